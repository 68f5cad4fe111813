#!/bin/sh
# An hpc-wps job for Grid Engine, written into the job's directory by gridengine_cli.py beside this file
# and submitted with `qsub -terse`. Its options (name, working directory, output files, h_rt, h_vmem,
# parallel environment, project, native options) are qsub's argv, not "#$$" lines, so that no value is
# read by Grid Engine's script parser. Every value below was quoted for the shell (shlex.quote).
${environment}
exec ${command}
