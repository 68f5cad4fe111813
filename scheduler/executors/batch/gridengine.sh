#!/bin/sh
# An hpc-wps job for Grid Engine, written into the job's directory by gridengine_cli.py beside this file
# and submitted with `qsub -terse`; or a task array's, in the array's directory, whose tasks each run the
# launcher on the link named by their index ($$SGE_TASK_ID) to their job directory. Its options (name,
# working directory, output files, h_rt, h_vmem, parallel environment, project, native options) are
# qsub's argv, not "#$$" lines, so that no value is read by Grid Engine's script parser. Every value
# below was quoted for the shell (shlex.quote).
${environment}
exec ${command}
