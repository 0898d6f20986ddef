"""The cross-validation training queue: every job of the fair comparison, run two at a time across sessions.

    python -m nervseg.train.queue status                 # done / running / left, with an ETA
    python -m nervseg.train.queue run [--until 16:55]    # start the runner in the background (low priority)
    python -m nervseg.train.queue stop                   # start no new job (running ones finish)

Jobs come from nervseg/recipes.json and the fold files: the recipe pilot, then per task and
architecture the final model (all non-sample data) and the five folds; usgra jobs start from the
kaggle-bp final model of the same architecture. Each job runs as a single-thread process at nice 19,
checkpoints every epoch and resumes when started again (its log row then counts the CPU of the interrupted
runs too, from the checkpoint's record). What a finished job leaves is small and
tracked, so it survives a new machine:
  splits/cv/jobs.csv                       one row per finished job: CPU and wall minutes
  splits/cv/<task>/<arch>/fold<K>.csv      the fold's per-image out-of-fold rows (nervseg.cv.run.ROW_KEYS)
  splits/cv/<task>/<arch>/fold<K>.json     the fold model's card (recipe, curves, CPU time)
  splits/cv/pilot/<variant>.csv|.json      the pilot's rows and cards
  models/next/<task>-<arch>.*              the final models (card, fp16 weights, ONNX graph)
Checkpoints and logs stay in runs/queue (git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nervseg import PROJECT_ROOT
from nervseg.files import write_text_atomic

RECIPES = Path(__file__).with_name("recipes.json")
LOG_KEYS = ("job", "cpu_minutes", "wall_minutes", "finished", "machine")


@dataclass(frozen=True)
class QueuePaths:
    """Where the queue keeps things: tracked results (cv_dir, next_models) and git-ignored work."""

    root: Path = PROJECT_ROOT

    @property
    def cv_dir(self) -> Path:
        return self.root / "splits" / "cv"

    @property
    def next_models(self) -> Path:
        return self.root / "models" / "next"

    @property
    def work(self) -> Path:
        return self.root / "runs" / "queue"

    @property
    def final_runs(self) -> Path:
        """Where final jobs checkpoint (nervseg.train --runs)."""
        return self.work / "final"

    def job_root(self, job: Job) -> Path:
        """Where a fold or pilot job trains and scores (nervseg.cv's --cv-root)."""
        return self.work / ("pilot" / Path(job.variant) if job.kind == "pilot" else Path("cv"))

    def rel(self, path: Path) -> str:
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)


HERE = QueuePaths()


@dataclass(frozen=True)
class Job:
    """One training run of the plan; `needs` are job ids that must have finished first."""

    id: str
    kind: str  # pilot | final | fold
    task: str
    arch: str
    fold: int | None
    args: str
    needs: tuple[str, ...] = ()
    variant: str = ""
    estimate_minutes: float = 30.0

    def outputs(self, paths: QueuePaths) -> list[Path]:
        """The tracked files this job leaves behind."""
        if self.kind == "final":
            return [paths.next_models / f"{self.task}-{self.arch}.json"]
        cv_dir = paths.cv_dir
        stem = cv_dir / "pilot" / self.variant if self.kind == "pilot" else cv_dir / self.task / self.arch / f"fold{self.fold}"
        return [stem.with_suffix(".csv"), stem.with_suffix(".json")]

    def checkpoint(self, paths: QueuePaths) -> Path:
        """The job's last training checkpoint (where `command` has nervseg.train keep it)."""
        if self.kind == "final":
            return paths.final_runs / f"{self.task}-{self.arch}" / "last.pt"
        return self.cv_run(paths).checkpoint(self.fold)

    def cv_run(self, paths: QueuePaths):
        """The nervseg.cv run of a fold or pilot job (its folder layout is that module's)."""
        from nervseg.cv.run import CvRun

        return CvRun(self.task, self.arch, cv_root=paths.job_root(self))


def read_recipes(path: Path = RECIPES) -> dict:
    return json.loads(Path(path).read_text())


def plan(recipes: dict, folds_of: dict[str, int]) -> list[Job]:
    """Every job in run order: the pilot, each task's final models, then its folds (architectures interleaved)."""
    jobs: list[Job] = []
    p = recipes.get("pilot")
    if p:
        for variant, args in p["variants"].items():
            jobs.append(Job(f"pilot/{p['task']}/{p['arch']}/fold{p['fold']}/{variant}", "pilot", p["task"], p["arch"],
                            p["fold"], args, variant=variant, estimate_minutes=p["minutes"] + 2))
    archs = recipes["architectures"]
    for task, r in recipes["tasks"].items():
        for arch in archs:
            needs = (f"final/{r['needs']}/{arch}",) if r.get("needs") else ()
            est = r["estimate_minutes"][arch]
            jobs.append(Job(f"final/{task}/{arch}", "final", task, arch, None, r["args"].replace("{arch}", arch), needs,
                            estimate_minutes=est * recipes.get("final_factor", 1.25)))
        for k in range(folds_of[task]):
            for arch in archs:
                needs = (f"final/{r['needs']}/{arch}",) if r.get("needs") else ()
                jobs.append(Job(f"fold/{task}/{arch}/fold{k}", "fold", task, arch, k,
                                r["args"].replace("{arch}", arch), needs, estimate_minutes=r["estimate_minutes"][arch]))
    return jobs


def default_plan() -> list[Job]:
    from nervseg.data.splits import read_folds

    recipes = read_recipes()
    folds = {t: read_folds(PROJECT_ROOT / "splits" / f"{t}-folds.json").k for t in recipes["tasks"]}
    return plan(recipes, folds)


# ---------------------------------------------------------------- the log of finished jobs


def read_log(paths: QueuePaths = HERE) -> list[dict]:
    path = paths.cv_dir / "jobs.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_log(row: dict, paths: QueuePaths = HERE) -> None:
    path = paths.cv_dir / "jobs.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(LOG_KEYS))
        if new:
            w.writeheader()
        w.writerow({k: row[k] for k in LOG_KEYS})


def finished(jobs: list[Job], paths: QueuePaths = HERE) -> set[str]:
    """Ids of jobs that are in the log and whose tracked outputs exist."""
    logged = {r["job"] for r in read_log(paths)}
    return {j.id for j in jobs if j.id in logged and all(p.is_file() for p in j.outputs(paths))}


def estimate(job: Job, log: list[dict]) -> float:
    """Wall minutes expected for `job`: the mean of finished jobs of its kind, task and architecture; else of any
    finished job of its task and architecture (a fold costs about what its final does: measured on usgra U-Net,
    40.6 and 40.4 CPU-min); else the recipe's."""
    for key, same in ((_kind_key(job.id), _kind_key), (_model_key(job.id), _model_key)):
        seen = [float(r["wall_minutes"]) for r in log if same(r["job"]) == key]
        if seen:
            return sum(seen) / len(seen)
    return job.estimate_minutes


def _model_key(job_id: str) -> str:
    """'usgra/unet' from 'fold/usgra/unet/fold1' or 'final/usgra/unet'."""
    parts = job_id.split("/")
    return "/".join(parts[1:3]) if parts[0] != "pilot" else job_id


def pace(ratios: list[float]) -> float:
    """How many times longer than estimated jobs take on this machine now (never below 1): the median of
    this run's finished jobs' wall/estimate ratios and running jobs' elapsed/estimate where past 1.
    The log's wall minutes come from other sessions' machines, which may be faster or less busy."""
    return max(1.0, float(sorted(ratios)[len(ratios) // 2])) if ratios else 1.0


def _kind_key(job_id: str) -> str:
    parts = job_id.split("/")
    return "/".join(parts[:3]) if parts[0] != "pilot" else job_id


def ready_jobs(jobs: list[Job], done: set[str], busy: set[str], fits=lambda job: True) -> list[Job]:
    """Jobs not done, not running, whose needs are done and that `fits`, in plan order."""
    return [j for j in jobs if j.id not in done and j.id not in busy and all(n in done for n in j.needs) and fits(j)]


def next_ready(jobs: list[Job], done: set[str], busy: set[str], fits=lambda job: True, cost=None) -> Job | None:
    """A job not done, not running, whose needs are done and that `fits` (e.g. the time left): the first in
    plan order, or with `cost` (minutes) the longest.

    A job that does not fit is passed over for a later, shorter one rather than leaving a core idle. Longest
    first (the classic rule for packing jobs on parallel machines): in plan order the long DenseNet folds
    came last, when a session's time left no longer held them, and cores idled while they waited."""
    ready = ready_jobs(jobs, done, busy, fits)
    if not ready:
        return None
    return max(ready, key=cost) if cost else ready[0]  # max keeps the first of equal costs


# ---------------------------------------------------------------- running one job


# A fold's per-epoch validation draws its curve and selects nothing, yet costs about a quarter of a usgra fold
# on one thread (SK-U-Net fold 1: ~40 s of training and ~15 s of validation an epoch): every 4th epoch and the last.
FOLD_VAL_EVERY = 4


def command(job: Job, paths: QueuePaths = HERE, python: str = sys.executable) -> list[str]:
    """The process that runs `job` (one thread; resumes from its checkpoint if one exists)."""
    if job.kind == "final":
        return [python, "-m", "nervseg.train", "--task", job.task, "--arch", job.arch,
                "--split-file", f"splits/{job.task}-folds.json", *shlex.split(job.args), "--threads", "1",
                "--out", paths.rel(paths.next_models), "--runs", paths.rel(paths.final_runs), "--resume"]
    init_dir = paths.root / "models" if job.kind == "pilot" else paths.next_models
    return [python, "-m", "nervseg.cv", "run", "--task", job.task, "--arch", job.arch, "--folds", str(job.fold),
            "--recipe-args", f"{job.args} --threads 1" + (f" --val-every {FOLD_VAL_EVERY}" if job.kind == "fold" else ""),
            "--init-dir", paths.rel(init_dir),
            "--cv-root", paths.rel(paths.job_root(job))]


def earlier_minutes(job: Job, paths: QueuePaths = HERE) -> tuple[float, float]:
    """CPU and wall minutes that interrupted runs of `job` spent in the epochs its checkpoint holds.

    A session's end kills a job and its runner, so the kernel's count for that run is lost; the
    checkpoint's record (nervseg.train.loop.save_checkpoint) keeps the epochs' CPU. Its start-up and the
    unfinished epoch are not counted: at most a few minutes per interruption.
    """
    side = job.checkpoint(paths).with_suffix(".json")
    try:
        saved = json.loads(side.read_text())
        return float(saved["cpu_seconds"]) / 60, float(saved["elapsed_seconds"]) / 60
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0, 0.0


def keep_outputs(job: Job, paths: QueuePaths = HERE) -> None:
    """Copy a finished fold's or pilot's scores and card from the work folder into the tracked folder."""
    if job.kind == "final":
        return
    src = job.cv_run(paths).fold_dir(job.fold)
    csv_out, card_out = job.outputs(paths)
    csv_out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "scores.csv", csv_out)
    shutil.copy2(src / f"{job.task}-{job.arch}.json", card_out)


def machine() -> str:
    """What ran the job, for jobs.csv: CPU time means the budget only where no GPU was there."""
    gpu = ", GPU" if Path("/dev/nvidia0").exists() else ""
    return f"{platform.machine()} {os.cpu_count()} cores{gpu}"


class Runner:
    """Starts jobs while slots are free; records each finished job's CPU time from the kernel (wait4)."""

    def __init__(self, jobs: list[Job], workers: int = 2, deadline: float | None = None, paths: QueuePaths = HERE,
                 command_of=command, keep=keep_outputs, tasks: frozenset[str] | None = None):
        self.jobs, self.workers, self.deadline, self.paths = jobs, workers, deadline, paths
        self.tasks = tasks  # start only jobs of these tasks (e.g. the one whose data a lent machine holds)
        self.command_of, self.keep = command_of, keep
        # the Popen objects stay referenced while their jobs run: a dropped one is polled (and its exit
        # reaped) by the next Popen call, and wait4 would never see that job end
        self.running: dict[int, tuple[Job, float, subprocess.Popen]] = {}
        self.ratios: list[float] = []  # wall / estimate of the jobs this run finished
        self.earlier: dict[str, tuple[float, float]] = {}  # CPU and wall minutes of a job's interrupted runs
        self.work = paths.work
        (self.work / "logs").mkdir(parents=True, exist_ok=True)

    def _start(self, job: Job) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NERVSEG_THREADS": "1",
               "PYTHONUNBUFFERED": "1"}
        cmd = self.command_of(job, self.paths)
        self.earlier[job.id] = earlier_minutes(job, self.paths)
        log = open(self.work / "logs" / (job.id.replace("/", "_") + ".log"), "a")
        log.write(f"\n=== {datetime.now(UTC).isoformat(timespec='seconds')} {shlex.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=self.paths.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: os.nice(19), start_new_session=True)
        log.close()
        self.running[proc.pid] = (job, time.time(), proc)
        self._write_state()
        print(f"started {job.id} (pid {proc.pid})", flush=True)

    def _write_state(self) -> None:
        state = {"runner_pid": os.getpid(), "deadline": self.deadline,
                 "running": [{"job": j.id, "pid": pid, "started": t} for pid, (j, t, _) in self.running.items()]}
        write_text_atomic(self.work / "state.json", json.dumps(state))

    def pace(self, log: list[dict], now: float | None = None) -> float:
        now = now or time.time()
        past = [r for j, t, _ in self.running.values() if (r := (now - t) / 60 / estimate(j, log)) > 1]
        return pace(self.ratios + past)

    def _fits(self, job: Job, log: list[dict]) -> bool:
        if self.deadline is None:
            return True
        need = estimate(job, log) * self.pace(log)
        left = max(need - earlier_minutes(job, self.paths)[1], 0.1 * need)  # a resumed job has less to do
        return time.time() + 60 * left <= self.deadline

    def run(self) -> None:
        failed: set[str] = set()
        while True:
            done = finished(self.jobs, self.paths)
            busy = {j.id for j, _, _ in self.running.values()} | failed
            log = read_log(self.paths)
            while len(self.running) < self.workers and not (self.work / "stop").exists():
                job = next_ready([j for j in self.jobs if self.tasks is None or j.task in self.tasks], done, busy,
                                 fits=lambda j: self._fits(j, log), cost=lambda j: estimate(j, log))
                if job is None:
                    break
                self._start(job)
                busy.add(job.id)
            if not self.running:
                break
            pid, status, usage = os.wait4(-1, 0)
            if pid not in self.running:
                continue
            job, started, proc = self.running.pop(pid)
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait on it again
            self._write_state()
            cpu, wall = (usage.ru_utime + usage.ru_stime) / 60, (time.time() - started) / 60
            earlier, earlier_wall = self.earlier.pop(job.id, (0.0, 0.0))
            cpu, wall = cpu + earlier, wall + earlier_wall
            if os.waitstatus_to_exitcode(status) != 0:
                failed.add(job.id)  # not retried in this run: its log says why
                print(f"FAILED {job.id} (exit {os.waitstatus_to_exitcode(status)}); see runs/queue/logs", flush=True)
                continue
            self.keep(job, self.paths)
            self.ratios.append(wall / estimate(job, log))  # `log` as it was when the job could last start
            append_log({"job": job.id, "cpu_minutes": f"{cpu:.3f}", "wall_minutes": f"{wall:.3f}",
                        "finished": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine()},
                       self.paths)
            print(f"finished {job.id}: {cpu:.1f} CPU min" + (f" ({earlier:.1f} of them in interrupted runs)"
                  if earlier else "") + f", {wall:.1f} wall min", flush=True)
        (self.work / "state.json").unlink(missing_ok=True)
        print("queue runner stopped: " + ("nothing left" if len(finished(self.jobs, self.paths)) == len(self.jobs)
                                          else "no job left that is ready and fits the time"), flush=True)


# ---------------------------------------------------------------- status


def _alive(pid: int) -> bool:
    """Whether `pid` is still one of the queue's processes (runner or job).

    state.json outlives a session killed with its machine; after a restart its pids may belong to other
    programs, which `run` must not wait for and `stop --now` must not end.
    """
    if Path("/proc/self/cmdline").exists():
        try:
            return b"nervseg" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    try:  # no /proc (macOS): whether the pid exists at all
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def status_lines(jobs: list[Job], workers: int = 2, paths: QueuePaths = HERE) -> list[str]:
    """done / running / left, CPU hours so far, and an ETA at `workers` jobs at a time."""
    log = read_log(paths)
    done = finished(jobs, paths)
    state_path = paths.work / "state.json"
    running = []
    if state_path.is_file():
        state = json.loads(state_path.read_text())
        if _alive(state["runner_pid"]):
            running = [r for r in state["running"] if _alive(r["pid"])]
    run_ids = {r["job"] for r in running}
    left = [j for j in jobs if j.id not in done and j.id not in run_ids]
    by_id = {j.id: j for j in jobs}
    rem = sum(estimate(j, log) for j in left)
    rem += sum(max(0.0, estimate(by_id[r["job"]], log) - (time.time() - r["started"]) / 60)
               for r in running if r["job"] in by_id)
    cpu_h = sum(float(r["cpu_minutes"]) for r in log) / 60
    lines = [f"done {len(done)} / running {len(running)} / left {len(left)} of {len(jobs)} jobs; "
             f"{cpu_h:.1f} CPU-hours so far; ETA {rem / workers / 60:.1f} h at {workers} jobs at a time"]
    lines += [f"  running {r['job']} for {(time.time() - r['started']) / 60:.0f} min" for r in running]
    ready = sorted(ready_jobs(left, done, set()), key=lambda j: -estimate(j, log))  # the runner's order
    lines += [f"  next    {j.id} (~{estimate(j, log):.0f} min)" for j in ready[:4]]
    return lines


def runner_alive(paths: QueuePaths = HERE) -> int | None:
    """The pid of a live runner, if there is one (a second runner would start the same jobs again)."""
    state = paths.work / "state.json"
    if state.is_file():
        pid = json.loads(state.read_text())["runner_pid"]
        if _alive(pid):
            return pid
    return None


def deadline_of(until: str, hours: float, now: datetime | None = None) -> float | None:
    """Epoch seconds by which started jobs should end: --until HH:MM (local time, today or tomorrow) or --hours."""
    now = now or datetime.now()
    if until:
        h, m = (int(x) for x in until.split(":"))
        t = now.replace(hour=h, minute=m, second=0, microsecond=0)
        return (t if t > now else t + timedelta(days=1)).timestamp()
    return now.timestamp() + hours * 3600 if hours else None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m nervseg.train.queue", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="start the runner in the background")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--hours", type=float, default=0.0, help="start no job that would not finish within this many hours")
    r.add_argument("--until", default="", help="start no job that would not finish by this time (HH:MM, local)")
    r.add_argument("--foreground", action="store_true", help="run here instead of in the background")
    r.add_argument("--tasks", nargs="*", help="start only these tasks' jobs (e.g. on a machine holding only their data)")
    sub.add_parser("status")
    s = sub.add_parser("stop", help="start no new job; --now also ends the running ones (they resume next time)")
    s.add_argument("--now", action="store_true")
    args = ap.parse_args(argv)
    jobs = default_plan()
    if args.cmd == "status":
        print("\n".join(status_lines(jobs)))
    elif args.cmd == "stop":
        HERE.work.mkdir(parents=True, exist_ok=True)
        (HERE.work / "stop").touch()
        state = HERE.work / "state.json"
        if args.now and state.is_file():
            for r in json.loads(state.read_text())["running"]:
                if _alive(r["pid"]):
                    os.killpg(r["pid"], signal.SIGTERM)  # the job and its training process
        print("the runner starts no new job" + (" and its jobs were ended" if args.now else ""))
    elif runner_alive():
        raise SystemExit(f"a runner is already working (pid {runner_alive()}): `stop`, wait for it, then `run` again")
    elif args.foreground:
        (HERE.work / "stop").unlink(missing_ok=True)
        Runner(jobs, args.workers, deadline_of(args.until, args.hours),
               tasks=frozenset(args.tasks) if args.tasks else None).run()
    else:
        HERE.work.mkdir(parents=True, exist_ok=True)
        (HERE.work / "stop").unlink(missing_ok=True)
        deadline = deadline_of(args.until, args.hours)
        cmd = [sys.executable, "-m", "nervseg.train.queue", "run", "--foreground", "--workers", str(args.workers),
               "--hours", str((deadline - time.time()) / 3600 if deadline else 0), *(["--tasks", *args.tasks] if args.tasks else [])]
        with open(HERE.work / "runner.log", "a") as log:
            proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        print(f"queue runner started (pid {proc.pid}); log runs/queue/runner.log; "
              "`python -m nervseg.train.queue status` shows progress")


if __name__ == "__main__":
    main()
