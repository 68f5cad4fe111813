"""PyWPS equivalents of the hpc-wps processes used by the benchmark.

Only say_hello, sleep and bigoutput are exercised; they take the same inputs
and produce the same outputs as ours so that the requests are identical.
"""

import os
import time

from pywps import ComplexOutput, Format, LiteralInput, LiteralOutput, Process

CHUNK = 1024 * 1024  # bigoutput writes its file 1 MiB at a time


class SayHello(Process):
    def __init__(self):
        super().__init__(
            self._handler,
            identifier="say_hello",
            title="Say Hello",
            abstract="Returns a literal string output with Hello plus the inputed name",
            version="1.0",
            inputs=[LiteralInput("name", "Input name", data_type="string")],
            outputs=[LiteralOutput("response", "Output response", data_type="string")],
            store_supported=True,
            status_supported=True,
        )

    @staticmethod
    def _handler(request, response):
        response.outputs["response"].data = "Hello " + request.inputs["name"][0].data
        return response


class Sleep(Process):
    def __init__(self):
        super().__init__(
            self._handler,
            identifier="sleep",
            title="Sleep Process",
            abstract="Sleeps for `delay` seconds, reporting its progress in 5 steps",
            version="1.0",
            inputs=[LiteralInput("delay", "Delay between every update", data_type="float")],
            outputs=[LiteralOutput("sleep_output", "Sleep Output", data_type="string")],
            store_supported=True,
            status_supported=True,
        )

    @staticmethod
    def _handler(request, response):
        delay = float(request.inputs["delay"][0].data)
        for step in range(5):
            response.update_status(f"sleeping, step {step + 1}/5", step * 20)
            if delay > 0:
                time.sleep(delay / 5.0)
        response.outputs["sleep_output"].data = "done sleeping"
        return response


class BigOutput(Process):
    def __init__(self):
        super().__init__(
            self._handler,
            identifier="bigoutput",
            title="Big output",
            abstract="Returns `size_mb` MiB of bytes as a complex output",
            version="1.0",
            inputs=[LiteralInput("size_mb", "Size in MiB", data_type="integer")],
            outputs=[ComplexOutput("output", "Output bytes", supported_formats=[Format("application/octet-stream")])],
            store_supported=True,
            status_supported=True,
        )

    @staticmethod
    def _handler(request, response):
        size_mb = int(request.inputs["size_mb"][0].data)
        path = os.path.join(response.process.workdir if hasattr(response, "process") else ".", "output.bin")
        block = b"\x5a" * CHUNK
        with open(path, "wb") as f:
            for _ in range(size_mb):
                f.write(block)
        # Hand PyWPS the file, not the bytes: the best it can do.
        response.outputs["output"].file = path
        return response


PROCESSES = [SayHello, Sleep, BigOutput]  # what hpc-wps's [processing] processes names (run.py, "ours_pywps")


def all_processes():
    return [process() for process in PROCESSES]
