"""The demo processes that ship enabled; later checks and OGC's test suite depend on their identifiers."""

from processes.builtin.bigoutput import PROCESS as BIGOUTPUT
from processes.builtin.echo import PROCESS as ECHO
from processes.builtin.fail import PROCESS as FAIL
from processes.builtin.say_hello import PROCESS as SAY_HELLO
from processes.builtin.sleep import PROCESS as SLEEP
from processes.builtin.wordcounter import PROCESS as WORDCOUNTER

BUILTIN_PROCESSES = (SAY_HELLO, SLEEP, WORDCOUNTER, ECHO, BIGOUTPUT, FAIL)
