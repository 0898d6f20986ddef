"""The training queue: the plan from recipes.json, what counts as done, dependencies, the runner, ETA."""

from __future__ import annotations

import sys
from datetime import datetime

import pytest

from nervseg.train import queue as q

RECIPES = {
    "architectures": ["a1", "a2"],
    "tasks": {
        "base": {"args": "--size 32 32 --epochs 1", "needs": None, "estimate_minutes": {"a1": 1, "a2": 2}},
        "next": {"args": "--init-from base-{arch}", "needs": "base", "estimate_minutes": {"a1": 3, "a2": 4}},
    },
    "final_factor": 2.0,
    "pilot": {"task": "next", "arch": "a1", "fold": 0, "minutes": 5, "variants": {"old": "--x", "new": "--y"}},
}


def test_plan_lists_every_job_in_run_order_with_its_needs():
    jobs = q.plan(RECIPES, {"base": 2, "next": 3})
    ids = [j.id for j in jobs]
    assert ids[:2] == ["pilot/next/a1/fold0/old", "pilot/next/a1/fold0/new"]
    assert len(jobs) == 2 + 2 * (1 + 2) + 2 * (1 + 3)  # pilot + per task: finals and folds per architecture
    assert ids.index("final/base/a1") < ids.index("fold/base/a1/fold0")
    nxt = {j.id: j for j in jobs}
    assert nxt["final/next/a2"].needs == ("final/base/a2",)  # starts from the same architecture's base model
    assert nxt["fold/next/a1/fold2"].args == "--init-from base-a1"
    assert nxt["final/base/a2"].estimate_minutes == 4.0  # final_factor x the fold estimate
    assert not nxt["fold/base/a1/fold1"].needs


def test_shipped_recipes_give_one_recipe_per_task_for_every_architecture():
    recipes = q.read_recipes()
    jobs = q.default_plan()
    for task, r in recipes["tasks"].items():
        args = {j.args.replace(j.arch, "{arch}") for j in jobs if j.task == task and j.kind != "pilot"}
        assert args == {r["args"]}  # the same flags for the three architectures
    assert {j.arch for j in jobs if j.kind == "fold"} == set(recipes["architectures"])


def test_a_job_is_done_only_when_logged_and_its_tracked_files_exist(tmp_path):
    paths = q.QueuePaths(tmp_path)
    jobs = q.plan(RECIPES, {"base": 1, "next": 1})
    fold = next(j for j in jobs if j.id == "fold/base/a1/fold0")
    q.append_log({"job": fold.id, "cpu_minutes": "1.0", "wall_minutes": "1.1", "finished": "x", "machine": "m"}, paths)
    assert fold.id not in q.finished(jobs, paths)  # logged, but its rows are missing
    for p in fold.outputs(paths):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    assert q.finished(jobs, paths) == {fold.id}


def test_next_ready_waits_for_needs_and_skips_running_jobs():
    jobs = [j for j in q.plan(RECIPES, {"base": 1, "next": 1}) if j.kind != "pilot"]
    first = q.next_ready(jobs, set(), set())
    assert first.id == "final/base/a1"
    assert q.next_ready(jobs, set(), {first.id}).id == "final/base/a2"
    blocked = [j for j in jobs if j.task == "next"]
    assert q.next_ready(blocked, set(), set()) is None
    assert q.next_ready(blocked, {"final/base/a2"}, set()).arch == "a2"


def test_next_ready_passes_over_a_job_that_does_not_fit_for_one_that_does():
    jobs = [j for j in q.plan(RECIPES, {"base": 1, "next": 1}) if j.kind != "pilot"]
    too_long = {"final/base/a1"}
    assert q.next_ready(jobs, set(), set(), fits=lambda j: j.id not in too_long).id == "final/base/a2"
    assert q.next_ready(jobs, set(), set(), fits=lambda j: False) is None


def test_next_ready_with_costs_takes_the_longest_job_that_fits():
    jobs = [j for j in q.plan(RECIPES, {"base": 2, "next": 1}) if j.kind == "fold" and j.task == "base"]
    minutes = {"fold/base/a1/fold0": 3, "fold/base/a2/fold0": 9, "fold/base/a1/fold1": 5, "fold/base/a2/fold1": 9}
    first = q.next_ready(jobs, set(), set(), cost=lambda j: minutes[j.id])
    assert first.id == "fold/base/a2/fold0"  # the longest; of two equal, the first in plan order
    assert q.next_ready(jobs, set(), {first.id}, cost=lambda j: minutes[j.id]).id == "fold/base/a2/fold1"
    short = q.next_ready(jobs, set(), set(), fits=lambda j: minutes[j.id] < 6, cost=lambda j: minutes[j.id])
    assert short.id == "fold/base/a1/fold1"  # the longest of those that fit
    assert q.next_ready(jobs, set(), set()).id == "fold/base/a1/fold0"  # without costs: plan order


def test_estimate_learns_from_the_log():
    job = next(j for j in q.plan(RECIPES, {"base": 2, "next": 1}) if j.id == "fold/base/a2/fold1")
    assert q.estimate(job, []) == 2
    log = [{"job": "fold/base/a2/fold0", "wall_minutes": "7.0"}, {"job": "fold/base/a1/fold0", "wall_minutes": "1"}]
    assert q.estimate(job, log) == 7.0


def test_estimate_falls_back_to_the_same_models_other_jobs_then_the_recipe():
    job = next(j for j in q.plan(RECIPES, {"base": 2, "next": 1}) if j.id == "fold/base/a2/fold1")
    log = [{"job": "final/base/a2", "wall_minutes": "9"}, {"job": "fold/base/a1/fold0", "wall_minutes": "1"},
           {"job": "final/next/a2", "wall_minutes": "50"}]
    assert q.estimate(job, log) == 9.0  # its own final, not another architecture's or task's
    assert q.estimate(job, log + [{"job": "fold/base/a2/fold0", "wall_minutes": "5"}]) == 5.0  # its kind first


def test_pace_only_ever_slows_estimates_down():
    assert q.pace([]) == 1.0
    assert q.pace([0.5, 0.8]) == 1.0  # a faster machine than the log's does not shorten the margin
    assert q.pace([1.2, 2.0, 1.6]) == 1.6


def test_a_slow_machine_starts_no_job_that_would_overrun_the_deadline(tmp_path):
    """The log's minutes come from other machines: jobs running past their estimate here stretch the
    estimate of the next one, so a job that fits on paper but not at this machine's pace is not started."""
    import time

    jobs = [j for j in q.plan(RECIPES, {"base": 1, "next": 1}) if j.kind != "pilot"]
    nxt = next(j for j in jobs if j.id == "fold/base/a1/fold0")  # estimate 1 min
    runner = q.Runner(jobs, workers=2, deadline=time.time() + 90, paths=q.QueuePaths(tmp_path))
    assert runner._fits(nxt, [])
    running = next(j for j in jobs if j.id == "final/base/a2")  # estimate 4 min (2 x final_factor)
    runner.running[1] = (running, time.time() - 3 * 4 * 60, None)  # three times its estimate so far
    assert runner.pace([]) == pytest.approx(3.0, rel=0.01)
    assert not runner._fits(nxt, [])  # 1 min x 3 > the 90 s left


def test_fold_jobs_validate_every_few_epochs_and_finals_are_unchanged(tmp_path):
    jobs = {j.id: j for j in q.plan(RECIPES, {"base": 1, "next": 1})}
    paths = q.QueuePaths(tmp_path)
    fold = q.command(jobs["fold/base/a1/fold0"], paths)
    assert fold[fold.index("--recipe-args") + 1].endswith(f"--threads 1 --val-every {q.FOLD_VAL_EVERY}")
    assert "--val-every" not in " ".join(q.command(jobs["final/base/a1"], paths))


def test_deadline_is_today_or_tomorrow():
    now = datetime(2026, 12, 6, 14, 0)
    assert datetime.fromtimestamp(q.deadline_of("16:30", 0, now)) == datetime(2026, 12, 6, 16, 30)
    assert datetime.fromtimestamp(q.deadline_of("09:00", 0, now)) == datetime(2026, 12, 7, 9, 0)
    assert q.deadline_of("", 0, now) is None
    assert q.deadline_of("", 1.5, now) == pytest.approx(now.timestamp() + 5400)


def _fake_command(job, paths):
    """A job that burns a little CPU and writes the files a real one leaves (fails for variant 'bad')."""
    outs = [str(p) for p in job.outputs(paths)]
    code = ("import sys, pathlib\n"
            "s = sum(i * i for i in range(2000000))\n"
            f"sys.exit(3) if {job.variant == 'bad'!r} else None\n"
            f"[pathlib.Path(p).parent.mkdir(parents=True, exist_ok=True) or pathlib.Path(p).write_text('x') for p in {outs!r}]\n")
    return [sys.executable, "-c", code]


def test_runner_runs_every_ready_job_logs_cpu_time_and_skips_done_and_failed_jobs(tmp_path, capsys):
    recipes = {**RECIPES, "pilot": {**RECIPES["pilot"], "variants": {"ok": "", "bad": ""}}}
    jobs = q.plan(recipes, {"base": 1, "next": 1})
    paths = q.QueuePaths(tmp_path)
    q.Runner(jobs, workers=2, paths=paths, command_of=_fake_command, keep=lambda job, paths: None).run()
    done = q.finished(jobs, paths)
    assert done == {j.id for j in jobs} - {"pilot/next/a1/fold0/bad"}
    log = q.read_log(paths)
    assert len(log) == len(done) and all(float(r["cpu_minutes"]) >= 0 for r in log)
    assert sum(float(r["cpu_minutes"]) for r in log) > 0  # the kernel's CPU time of the children, not zero
    assert "FAILED pilot/next/a1/fold0/bad" in capsys.readouterr().out
    assert not (paths.work / "state.json").exists()
    # a second run starts only what is left (the failed job, which fails again): nothing done is redone
    q.Runner(jobs, workers=2, paths=paths, command_of=_fake_command, keep=lambda job, paths: None).run()
    out = capsys.readouterr().out
    assert out.count("started ") == 1 and "started pilot/next/a1/fold0/bad" in out
    assert len(q.read_log(paths)) == len(log)


def test_runner_starts_the_longest_ready_job_first(tmp_path, capsys):
    jobs = [j for j in q.plan(RECIPES, {"base": 1, "next": 1}) if j.kind != "pilot"]
    q.Runner(jobs, workers=1, paths=q.QueuePaths(tmp_path), command_of=_fake_command,
             keep=lambda job, paths: None).run()
    started = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("started ")]
    assert started[0] == "final/base/a2"  # 2 x final_factor 2 min: the longest ready job, not plan order's first
    assert started.index("final/next/a2") < started.index("fold/base/a1/fold0")  # next's 8-min final as soon as ready


def test_status_counts_and_eta(tmp_path):
    paths = q.QueuePaths(tmp_path)
    jobs = [j for j in q.plan(RECIPES, {"base": 1, "next": 1}) if j.kind != "pilot"]
    lines = q.status_lines(jobs, workers=2, paths=paths)
    total = sum(j.estimate_minutes for j in jobs)
    assert lines[0].startswith(f"done 0 / running 0 / left {len(jobs)} of {len(jobs)}")
    assert f"ETA {total / 2 / 60:.1f} h" in lines[0]


def test_runner_with_tasks_starts_only_their_jobs_and_their_needs_count_from_the_whole_plan(tmp_path, capsys):
    """A machine holding one task's data (a lent GPU with usgra only): that task's jobs run, their needs
    (the other task's finals, finished elsewhere) are read from the log of the whole plan."""
    jobs = [j for j in q.plan(RECIPES, {"base": 1, "next": 1}) if j.kind != "pilot"]
    paths = q.QueuePaths(tmp_path)
    keep = lambda job, paths: None  # noqa: E731
    q.Runner(jobs, workers=2, paths=paths, command_of=_fake_command, keep=keep, tasks=frozenset({"next"})).run()
    assert "started" not in capsys.readouterr().out  # "next" needs base's finals: nothing is ready yet
    q.Runner(jobs, workers=2, paths=paths, command_of=_fake_command, keep=keep, tasks=frozenset({"base"})).run()
    base = {j.id for j in jobs if j.task == "base"}
    assert q.finished(jobs, paths) == base
    q.Runner(jobs, workers=2, paths=paths, command_of=_fake_command, keep=keep, tasks=frozenset({"next"})).run()
    assert q.finished(jobs, paths) == {j.id for j in jobs}
    assert all(r["machine"] == q.machine() for r in q.read_log(paths))


def test_a_jobs_checkpoint_is_where_its_training_keeps_it(tmp_path):
    from nervseg.cv.run import CvRun

    paths = q.QueuePaths(tmp_path)
    jobs = {j.kind: j for j in q.plan(RECIPES, {"base": 2, "next": 2})}
    fold, final = jobs["fold"], jobs["final"]
    assert fold.checkpoint(paths) == CvRun(fold.task, fold.arch, cv_root=paths.job_root(fold)).checkpoint(fold.fold)
    cmd = q.command(final, paths)
    assert final.checkpoint(paths) == tmp_path / cmd[cmd.index("--runs") + 1] / f"{final.task}-{final.arch}" / "last.pt"


def _interrupted(job, paths, cpu_seconds: float, elapsed_seconds: float) -> None:
    """What a run killed with its session leaves: a checkpoint and its record (nervseg.train.loop)."""
    ckpt = job.checkpoint(paths)
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    ckpt.with_suffix(".json").write_text(
        f'{{"epochs_done": 7, "cpu_seconds": {cpu_seconds}, "elapsed_seconds": {elapsed_seconds}}}')


def test_a_resumed_job_logs_the_cpu_of_its_interrupted_runs(tmp_path, capsys):
    """A session's end kills a job and its runner: the kernel's count for that run is gone, so the log
    takes the epochs' CPU from the checkpoint; the budget's CPU-hours would otherwise leave it out."""
    jobs = [j for j in q.plan(RECIPES, {"base": 1, "next": 1}) if j.task == "base" and j.kind != "pilot"]
    paths = q.QueuePaths(tmp_path)
    resumed = next(j for j in jobs if j.kind == "fold")
    _interrupted(resumed, paths, cpu_seconds=600, elapsed_seconds=660)
    q.Runner(jobs, workers=1, paths=paths, command_of=_fake_command, keep=lambda job, paths: None).run()
    rows = {r["job"]: r for r in q.read_log(paths)}
    assert 10 < float(rows[resumed.id]["cpu_minutes"]) < 11  # 10 min before, a fraction of one now
    assert float(rows[resumed.id]["wall_minutes"]) > 11
    assert all(float(r["cpu_minutes"]) < 1 for j, r in rows.items() if j != resumed.id)
    assert f"finished {resumed.id}: 10." in capsys.readouterr().out


def test_a_resumed_job_needs_only_what_is_left_of_it_to_fit(tmp_path):
    import time

    jobs = [j for j in q.plan(RECIPES, {"base": 1, "next": 1}) if j.kind != "pilot"]
    paths = q.QueuePaths(tmp_path)
    job = next(j for j in jobs if j.id == "final/base/a2")  # estimate 4 min
    runner = q.Runner(jobs, workers=2, deadline=time.time() + 150, paths=paths)
    assert not runner._fits(job, [])
    _interrupted(job, paths, cpu_seconds=170, elapsed_seconds=180)  # 3 of its 4 minutes done
    assert runner._fits(job, [])


def test_a_stale_state_names_no_live_runner_when_its_pids_are_other_programs(tmp_path):
    """After a restart, the pids in a killed session's state.json may be reused by other programs."""
    import json
    import subprocess

    paths = q.QueuePaths(tmp_path)
    paths.work.mkdir(parents=True)
    other = subprocess.Popen(["sleep", "30"])
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "-m", "nervseg.train.queue"])
    try:
        for pid, alive in ((other.pid, None), (ours.pid, ours.pid)):
            (paths.work / "state.json").write_text(json.dumps({"runner_pid": pid, "deadline": None, "running": []}))
            assert q.runner_alive(paths) == alive
    finally:
        other.kill(), ours.kill(), other.wait(), ours.wait()
    (paths.work / "state.json").write_text(json.dumps({"runner_pid": ours.pid, "deadline": None, "running": []}))
    assert q.runner_alive(paths) is None  # ended
