#!/bin/sh
# An hpc-wps job for Slurm, written into the job's directory by slurm.py beside this file and submitted
# with `sbatch --parsable` on this file; or a job array's, in the array's directory, whose tasks each run
# the launcher on the link named by their index ($$SLURM_ARRAY_TASK_ID) to their job directory.
# Every value was quoted when the file was written: #SBATCH values for Slurm's own parser (double
# quotes, backslash escapes; % doubled in file names), the command for the shell (shlex.quote). Later
# #SBATCH options override earlier ones, so the native options of the configuration or the process
# come last. --no-requeue: a job Slurm would requeue
# (node failure) must not run a second time; it ends, and its result file or reason tells why.
#SBATCH --job-name=${job_name}
#SBATCH --chdir=${chdir}
#SBATCH --output=${output}
#SBATCH --error=${error}
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=${cores}
#SBATCH --mem=${memory}
#SBATCH --time=${walltime}
#SBATCH --no-requeue
${options}
exec ${command}
