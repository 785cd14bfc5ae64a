"""Input from others, on a shared cluster: files, --set values, names and what the cluster says.

Bad input stops with exit 2 and one line (``error: FILE, line N: KEY: what was expected``), in
bounded time, before Ray starts; run and sweep names stay one folder of their own; and whatever
comes from data is printed as it is, never read as rich markup. Most tests run the real
``labrun train`` on a file that fails before Ray starts.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from rich.console import Console

from cluster import labs
from cluster.config import schema
from cluster.config.rl_experiment import ExperimentConfig, check_env
from cluster.config.schema import ConfigError
from cluster.config.sweep import SweepConfig
from cluster.reinforce.console import ConsoleProgress
from cluster.reinforce.outputs import new_run_dir
from cluster.tuning import commands as tuning
from cluster.tuning.study import STUDY_FILE, Study
from helpers import REPO, run_cli, write_sweep

GOOD = """\
name: t
seed: 1
learner:
  lr: 0.01
  gamma: 0.99
stop:
  env_steps: 1000
"""


def train(tmp_path: Path, text: str | bytes, *sets: str):
    """``labrun train`` of ``text`` written to a file; (the process, the file's path)."""
    path = tmp_path / "exp.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    out = run_cli("train", str(path), "--runs-dir", str(tmp_path / "runs"),
                  *[arg for s in sets for arg in ("--set", s)], timeout=120)
    return out, path


def one_error_line(out) -> str:
    """The one line a refused input prints: exit 2, no traceback, nothing else, no run folder."""
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    return lines[0]


def load_text(tmp_path: Path, text: str, *sets: str):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return labs.load(path, sets)


# ------------------------------------------------------------------------- 1. the YAML pipeline


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    # PyYAML keeps the last silently: the second learner section would wipe lr: 0.01
    out, path = train(tmp_path, GOOD + "learner:\n  gamma: 0.9\n")
    assert one_error_line(out) == (f"error: {path}, line 8: learner: key given twice in one mapping "
                                   f"(first on line 3); expected each key once")


@pytest.mark.parametrize("text, key, lines", [
    ("learner:\n  lr: 0.1\n  gamma: 0.9\n  lr: 0.2\n", "learner.lr", (4, 2)),
    ("policy:\n  conv:\n    - {filters: 8, kernel: 3, filters: 16}\n", "policy.conv[0].filters", (3, 3)),
    ("env:\n  id: CartPole-v1\n  kwargs: {a: 1, b: 2}\n  kwargs: {}\n", "env.kwargs", (4, 3)),
])
def test_a_key_given_twice_is_refused_at_any_depth(tmp_path, text, key, lines):
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, text)
    assert (err.value.key, err.value.line) == (key, lines[0])
    assert f"first on line {lines[1]}" in err.value.message


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing but a comment\n", "null\n", "~\n", "---\n"])
def test_an_empty_file_is_refused_not_trained_with_the_defaults(tmp_path, text):
    out, path = train(tmp_path, text)
    assert one_error_line(out) == f"error: {path}: empty file: expected a mapping of keys"
    assert not (tmp_path / "runs").exists()


def test_a_file_that_is_not_utf8_is_bad_input(tmp_path):
    out, path = train(tmp_path, GOOD.encode() + "# café\n".encode("latin-1"))
    line = one_error_line(out)
    assert line.startswith(f"error: {path}, line 8: not UTF-8 text (byte 0xe9")
    assert "UnicodeDecodeError" not in line


@pytest.mark.parametrize("lab, key, value", [
    ("rl", "stop.mean_return", ".nan"),       # NaN compares false: the criterion never fires
    ("rl", "learner.lr", ".inf"),
    ("rl", "learner.max_grad_norm", "-.inf"),  # float | None
    ("rl", "stop.wall_time_s", "1e999"),       # a float too large: inf
    ("rl", "learner.chunk_steps", ".inf"),     # an integer field
    ("rl", "resources.learner_gpus", ".nan"),  # float | Literal['auto']
    ("rl", "learner.lr", "1" + "0" * 400),     # an integer beyond a float's range
    ("mnist", "mnist.lr", ".nan"),
    ("intro", "intro.lr", ".inf"),
    ("music", "music.temperature", ".nan"),
    ("dbvae", "dbvae.kl_weight", ".inf"),
    ("mnist", "trial.cpus", ".inf"),
])
def test_non_finite_numbers_are_refused_in_every_config_class(tmp_path, lab, key, value):
    section, _, name = key.partition(".")
    text = f"lab: {lab}\n{section}:\n  {name}: {value}\n"
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, text)
    assert (err.value.key, err.value.line) == (key, 3)
    assert err.value.message.startswith("expected a finite number, got ")
    with pytest.raises(ConfigError) as err:            # and through --set
        load_text(tmp_path, f"lab: {lab}\n", f"{key}={value}")
    assert (err.value.source, err.value.key) == ("--set", key)
    assert err.value.message.startswith("expected a finite number")


def test_non_finite_numbers_from_the_command_line_exit_2(tmp_path):
    out, path = train(tmp_path, GOOD, "stop.mean_return=.nan")
    assert one_error_line(out) == "error: --set: stop.mean_return: expected a finite number, got nan"
    out, path = train(tmp_path, GOOD.replace("lr: 0.01", "lr: 1e999"))
    assert one_error_line(out) == f"error: {path}, line 4: learner.lr: expected a finite number, got inf"


def test_a_sweep_of_non_finite_values_is_refused(tmp_path):
    sweep = write_sweep(tmp_path, {"intro.lr": {"uniform": [0.01, float("inf")]}})
    with pytest.raises(ConfigError, match="search_space.intro.lr: .* expected a finite number"):
        labs.load_sweep(sweep)
    sweep = write_sweep(tmp_path, {"intro.lr": {"grid": [0.1]}}, scheduler={"reduction_factor": float("nan")})
    with pytest.raises(ConfigError, match="scheduler.reduction_factor: expected a finite number"):
        labs.load_sweep(sweep)


def billion_laughs(levels: int = 9) -> str:
    """Ten keys a level, each the previous level again: 10**levels values from a few lines."""
    lines = ["l0: &l0 {k: v}"]
    lines += [f"l{i}: &l{i} {{" + ", ".join(f"k{j}: *l{i - 1}" for j in range(10)) + "}"
              for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_nested_aliases_are_refused_at_once(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(billion_laughs())
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        schema.load_yaml(path)
    assert time.monotonic() - start < 0.5
    assert err.value.line == 1 and "anchors and aliases" in err.value.message
    out, _ = train(tmp_path, billion_laughs())
    assert "line 1: YAML anchors and aliases (&name, *name) are not accepted" in one_error_line(out)


@pytest.mark.parametrize("text", [
    "learner: &l {lr: 0.1}\n",                                      # an anchor alone
    "a: &a {lr: 0.1}\nlearner: *a\n",
    "base: &b {lr: 0.1}\nlearner:\n  <<: *b\n  gamma: 0.9\n",      # a merge key
])
def test_anchors_and_aliases_are_refused(tmp_path, text):
    with pytest.raises(ConfigError, match="anchors and aliases"):
        load_text(tmp_path, text)


def test_no_shipped_config_needs_anchors_or_aliases():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        assert not [e for e in yaml.parse(path.read_text())
                    if getattr(e, "anchor", None) or isinstance(e, yaml.AliasEvent)], path


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path):
    out, path = train(tmp_path, "a: " + "[" * 100_000 + "\n")
    assert one_error_line(out) == f"error: {path}, line 1: nested deeper than 64 levels"


@pytest.mark.parametrize("text, message", [
    ("seed: 2024-13-45\n", "not valid YAML (month must be in 1..12)"),   # a date PyYAML cannot make
    ("seed: " + "1" * 5000 + "\n", "not valid YAML (Exceeds the limit (4300 digits)"),
])
def test_values_pyyaml_cannot_make_are_bad_input(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_text(tmp_path, text)


@pytest.mark.parametrize("env_id", ["os:system", "json:Env-v0", "no_such_module:Env-v0"])
def test_an_env_id_that_imports_a_module_is_refused(tmp_path, env_id):
    out, path = train(tmp_path, GOOD + f"env:\n  id: '{env_id}'\n")
    assert one_error_line(out).startswith(f"error: {path}, line 9: env.id: expected a registered "
                                          f"Gymnasium id")
    out, _ = train(tmp_path, GOOD, f"env.id={env_id}")
    assert one_error_line(out).startswith("error: --set: env.id: expected a registered Gymnasium id")


def test_a_sweep_over_env_ids_is_checked_for_modules_too(tmp_path):
    experiment = {"name": "rl_t", "rollout": {"num_workers": 1}, "stop": {"iterations": 1}}
    sweep = write_sweep(tmp_path, {"env.id": {"grid": ["CartPole-v1", "os:Env"]}},
                        metric="rollout/episode_return_mean", mode="max", experiment=experiment)
    with pytest.raises(ConfigError, match="search_space.env.id: grid value 'os:Env' .*registered"):
        labs.load_sweep(sweep)


def test_a_registered_env_whose_module_is_missing_is_bad_input():
    import gymnasium

    gymnasium.register("LabrunMissingModule-v0", entry_point="labrun_no_such_module:Env")
    try:
        cfg = schema.from_dict(ExperimentConfig, {"env": {"id": "LabrunMissingModule-v0"}})
        with pytest.raises(ConfigError, match="env: cannot make 'LabrunMissingModule-v0'.*labrun_no_such_module"):
            check_env(cfg, "exp.yaml")
    finally:
        gymnasium.registry.pop("LabrunMissingModule-v0", None)


@pytest.mark.parametrize("command, config, sets", [
    ("train", "configs/cartpole.yaml", ["learner.gamma=1.5"]),            # a value out of range
    ("train", "configs/cartpole.yaml", ["no_such_key=1"]),
    ("train", "configs/cartpole.yaml", ["env.id=NoSuchEnv-v0"]),          # the environment check
    ("train", "configs/cartpole.yaml", ["policy.conv=[{filters: 8}]"]),   # the policy fits it?
    ("train", "configs/missing.yaml", []),
    ("tune", "configs/cartpole_sweep.yaml", ["fixed.learner.lr=-1"]),
])
def test_refused_input_starts_nothing_though_start_up_overlaps(tmp_path, command, config, sets):
    """Ray and the TensorFlow import start side by side (cluster/reinforce/commands.py ``_run``),
    but only once the file, the --set values and the environment are checked: refused input
    exits 2 with one line, makes no run folder and starts no Ray (no session in RAY_TMPDIR,
    where tests/test_startup.py sees a good run put one)."""
    ray_tmp = tmp_path / "ray_tmp"
    ray_tmp.mkdir()
    out = run_cli(command, config, "--runs-dir", str(tmp_path / "runs"),
                  *[arg for s in sets for arg in ("--set", s)], timeout=120,
                  env={**os.environ, "RAY_TMPDIR": str(ray_tmp)})
    one_error_line(out)
    assert not (tmp_path / "runs").exists()
    assert list(ray_tmp.iterdir()) == []


# ----------------------------------------------------------------------------------- 2. names

BAD_NAMES = ["../../x", "a/b", "/abs", "a\\b", ".", "..", ".hidden", "~user", "C:x", "a\x00b",
             "line\nbreak", "esc\x1b[31m", "x" * 201]


@pytest.mark.parametrize("cls", [*(lab.experiment for lab in labs.LABS.values()), SweepConfig],
                         ids=[*labs.LABS, "sweep"])
@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_every_experiment_and_sweep_name_stays_one_folder(cls, name):
    with pytest.raises(ConfigError) as err:
        schema.from_dict(cls, {"name": name, "experiment": "e.yaml", "metric": "m"}
                         if cls is SweepConfig else {"name": name})
    assert err.value.key == "name" and "expected a name" in err.value.message


@pytest.mark.parametrize("name", ["cartpole", "my run", "pong_v2.1", "café", "a~b", "x" * 200])
def test_ordinary_names_are_accepted(name):
    for lab in labs.LABS.values():
        assert schema.from_dict(lab.experiment, {"name": name}).name == name
    assert schema.from_dict(SweepConfig, {"name": name}).name == name


def test_a_path_as_a_name_from_the_command_line_exits_2(tmp_path):
    out, _ = train(tmp_path, GOOD, "name=../../x")
    assert one_error_line(out).startswith("error: --set: name: expected a name without '/'")
    out, path = train(tmp_path, GOOD.replace("name: t", 'name: "a\\0b"'))
    assert one_error_line(out).startswith(f"error: {path}, line 1: name: expected a name")
    out, path = train(tmp_path, "lab: mnist\nname: .hidden\n")
    assert one_error_line(out).startswith(f"error: {path}, line 2: name: expected a name, not a path")
    assert not (tmp_path / "runs").exists()


def fake_ray(monkeypatch):
    """run_study without Ray: no session, no trials, ``rows`` as the results."""
    class NoRay:
        def __init__(self, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(tuning, "RaySession", NoRay)
    monkeypatch.setattr(tuning, "run_trials", lambda study, lab, resume=False: None)


def same_second(monkeypatch, module: str) -> None:
    """Every folder name ``module`` stamps with the time gets the same second."""
    monkeypatch.setattr(f"{module}.time", SimpleNamespace(strftime=lambda *args: "20260101-000000"))


def test_tune_runs_of_one_name_started_in_one_second_get_their_own_folders(tmp_path, monkeypatch):
    fake_ray(monkeypatch)
    monkeypatch.setattr(tuning, "summarise", lambda study, lab, results: [])
    same_second(monkeypatch, "cluster.tuning.study")
    lab = labs.LABS["intro"]
    cfg = schema.from_dict(lab.experiment, {"name": "same"})
    for _ in range(3):
        assert tuning.run_study(Study.single(lab, cfg, str(tmp_path)), lab, None) == 0
    (tmp_path / "files").mkdir()
    sweep = labs.load_sweep(write_sweep(tmp_path / "files", {"intro.lr": {"grid": [0.1]}}))
    for _ in range(2):
        assert tuning.run_study(Study.from_sweep(sweep, str(tmp_path)), sweep.lab, None) == 0
    folders = sorted(p.name for p in tmp_path.iterdir() if (p / STUDY_FILE).is_file())
    assert folders == ["s__20260101-000000", "s__20260101-000000-2", "same__0__20260101-000000",
                       "same__0__20260101-000000-2", "same__0__20260101-000000-3"]


def test_a_storage_uri_study_claims_its_own_staging_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LABRUN_HOME", str(tmp_path / "home"))
    same_second(monkeypatch, "cluster.tuning.study")
    lab = labs.LABS["intro"]
    cfg = schema.from_dict(lab.experiment, {"name": "same"})
    uri = f"file://{tmp_path / 'bucket'}"
    a, b = (Study.single(lab, cfg, uri).claim_folder() for _ in range(2))
    assert a.folder != b.folder and a.folder.is_dir() and b.folder.is_dir()
    assert (a.location, b.location) == (f"{uri}/same__0__20260101-000000", f"{uri}/same__0__20260101-000000-2")


def test_reinforce_and_tune_folders_share_one_exclusive_helper(tmp_path, monkeypatch):
    same_second(monkeypatch, "cluster.reinforce.outputs")
    names = [new_run_dir(tmp_path, "n", 0).name for _ in range(3)]
    assert names == ["n__0__20260101-000000", "n__0__20260101-000000-2", "n__0__20260101-000000-3"]


# -------------------------------------------------------------------------- 3. printed literally


def recording_console() -> tuple[Console, io.StringIO]:
    """A terminal-like console: rich markup in data would show as styles and hyperlinks here."""
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, color_system="standard", width=400), buf


@pytest.fixture(params=["[/x]", "[link=http://x]y[/link]"], ids=["closing-tag", "hyperlink"])
def markup(request) -> str:
    """Data that rich would read as markup: a closing tag with no opening one (MarkupError), a
    hyperlink (an OSC 8 escape on a terminal, the text alone elsewhere)."""
    return request.param


def assert_literal(text: str, markup: str) -> None:
    assert markup in text, text
    assert "\x1b]8;" not in text  # no hyperlink escape


def test_a_runs_events_and_summary_print_data_literally(markup):
    console, buf = recording_console()
    progress = ConsoleProgress(console=console)
    progress.event(f"worker lost: {markup}")
    progress.summary(f"labrun: {markup}", [("run folder", markup), (markup, "x")])
    progress.close()
    out = buf.getvalue()
    assert out.count(markup) == 4
    assert_literal(out, markup)
    assert "\x1b[33m!" in out          # labrun's own styling stays: the yellow "!" of an event


def test_tune_results_print_trial_names_keys_and_paths_literally(tmp_path, monkeypatch, capsys, markup):
    monkeypatch.setenv("COLUMNS", "400")   # no cell folded over two lines
    fake_ray(monkeypatch)
    runs = tmp_path / "a[" / "x]b"       # a folder whose path holds "[/x]"
    rows = [{"trial": f"t1 {markup}", "intro.lr": markup, "fit/loss": 0.5, "epochs": 1,
             "status": "error", "path": f"/p/{markup}"}]
    monkeypatch.setattr(tuning, "summarise", lambda study, lab, results: rows)
    lab = labs.LABS["intro"]
    study = Study.single(lab, schema.from_dict(lab.experiment, {"name": "n"}), str(runs))
    study = dataclasses.replace(study, space={"intro.lr": ("grid", [markup])})
    assert tuning.run_study(study, lab, None) == 1
    out = capsys.readouterr().out
    assert "a[/x]b" in out and f"t1 {markup}" in out and f"/p/{markup}/error.txt" in out
    assert_literal(out, markup)


def test_generated_tunes_titles_print_literally(tmp_path, monkeypatch, capsys, markup):
    from supervised import music_generation as mg

    monkeypatch.setenv("COLUMNS", "400")
    report = mg.SongReport("song_01", markup, False, f"music21: {markup}", True, ("song_01.abc",), None)
    monkeypatch.setattr(mg, "find_checkpoint", lambda run_dir: tmp_path / "ckpt")
    monkeypatch.setattr(mg, "load_generator", lambda folder: (None, [], {"epoch": 1}))
    monkeypatch.setattr(mg, "sample_songs", lambda *a, **k: [])
    monkeypatch.setattr(mg, "write_songs", lambda target, tunes, renderer: [report])
    assert tuning.generate(str(tmp_path), 1, None, None, 0, None) == 0
    out = capsys.readouterr().out
    assert out.count(markup) == 2
    assert_literal(out, markup)


def test_labrun_jobs_prints_entrypoints_literally(monkeypatch, capsys, markup):
    from cluster.infra import commands as infra
    from cluster.infra import jobs

    monkeypatch.setenv("COLUMNS", "400")
    job = SimpleNamespace(submission_id="raysubmit_1", job_id=None, start_time=None,
                          status=SimpleNamespace(value="RUNNING"), entrypoint=f"labrun train {markup}")
    monkeypatch.setattr(jobs, "connect", lambda address: SimpleNamespace(labrun_address=markup))
    monkeypatch.setattr(jobs, "list_jobs", lambda client: [job])
    assert infra.list_jobs(None) == 0
    out = capsys.readouterr().out
    assert f"jobs at {markup}" in out and f"labrun train {markup}" in out


def test_sweep_progress_lines_print_literally(markup):
    pytest.importorskip("ray")
    from cluster.tuning.progress import Progress

    progress = Progress(metric=markup, every_s=0)
    progress._console, buf = recording_console()
    trial = SimpleNamespace(trial_id="t1", config={"overrides": {"name": markup}}, path=markup,
                            last_result={markup: 1.0, "training_iteration": 1})
    progress.on_trial_start(0, [], trial)
    progress.on_trial_result(0, [], trial, trial.last_result)
    progress.on_trial_complete(0, [], trial)
    progress.on_trial_error(0, [], trial)
    out = buf.getvalue()
    assert out.count(markup) == 4
    assert_literal(out, markup)


def test_labrun_keys_prints_the_docs_literally():
    out = run_cli("keys", "sweep", timeout=60)
    assert out.returncode == 0 and "{uniform: [low," in out.stdout


@pytest.mark.slow
def test_a_run_prints_its_folder_and_name_literally(ray_address, tmp_path):
    """A user's run: a runs folder whose path holds markup, a name that would be a hyperlink."""
    runs = tmp_path / "a[" / "x]b"
    name = "[link=https:x]n[bold]"
    out = run_cli("train", "configs/cartpole.yaml", "--address", ray_address, "--runs-dir", str(runs),
                  "--set", f"name={name}", "--set", "rollout.num_workers=1",
                  "--set", "stop.iterations=1", "--set", "stop.mean_return=null",
                  env={**os.environ, "COLUMNS": "400"})   # no line folded
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"run folder: {runs}/{name}__0__" in out.stdout
    assert f"labrun: {name}" in out.stdout
    assert next(runs.iterdir()).name.startswith(f"{name}__0__")


def test_resume_latest_reads_a_sweep_name_literally_not_as_a_glob(tmp_path):
    """A sweep named 's[1]' finds no earlier sweep of its own beside one named 's1' (as a glob,
    's[1]__*' would match the other sweep's folder and resume it)."""
    sweep = write_sweep(tmp_path, {"intro.lr": {"grid": [0.1]}}, name="s[1]")
    runs = tmp_path / "runs"
    (runs / "s1__20260101-000000").mkdir(parents=True)
    out = run_cli("tune", str(sweep), "--runs-dir", str(runs), "--resume")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "no earlier sweep 's[1]'" in out.stderr, out.stderr


# ------------------------------------------------------------------------------------ --dry-run

DRY_RUN = """
import sys
from cluster.cli import main
code = main(sys.argv[1:])
print("imported ray:", "ray" in sys.modules)
sys.exit(code)
"""


def dry_run(*argv: str) -> tuple[int, str, str]:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", DRY_RUN, *argv], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    return out.returncode, out.stdout, out.stderr


def test_train_dry_run_prints_the_resolved_config_and_starts_nothing(tmp_path):
    """The file, its --set and every default, as the run's config.yaml would hold them; no Ray
    imported, no run folder; a bad value is still refused with exit 2."""
    code, out, err = dry_run("train", "configs/cartpole.yaml", "--dry-run", "--set", "learner.lr=0.05",
                             "--runs-dir", str(tmp_path / "runs"))
    assert code == 0, err
    body = "\n".join(line for line in out.splitlines() if not line.startswith(("#", "imported")))
    resolved = yaml.safe_load(body)
    assert resolved["learner"]["lr"] == 0.05 and resolved["env"]["id"] == "CartPole-v1"
    assert resolved == schema.to_dict(labs.load(REPO / "configs" / "cartpole.yaml",
                                                ["learner.lr=0.05"])[1])
    assert "imported ray: False" in out and not (tmp_path / "runs").exists()
    code, out, err = dry_run("train", "configs/cartpole.yaml", "--dry-run", "--set", "learner.lr=-1")
    assert code == 2 and "learner.lr" in err and "resolved" not in out
    code, out, err = dry_run("train", "configs/cartpole.yaml", "--dry-run", "--set", "env.id=NoSuchEnv-v0")
    assert code == 2 and "NoSuchEnv-v0" in err                # the environment is checked too


def test_tune_dry_run_lists_the_trials_tune_would_run(tmp_path):
    """Every grid combination, num_samples times over; a random kind shows its distribution."""
    from cluster.config.preview import trial_grid

    path = write_sweep(tmp_path, {"intro.lr": {"grid": [0.1, 0.2]}, "intro.epochs": {"grid": [1, 2]},
                                  "seed": {"randint": [0, 100]}}, num_samples=2)
    trials = trial_grid(labs.load_sweep(path))
    assert len(trials) == 8
    assert {(t["intro.lr"], t["intro.epochs"]) for t in trials} == {(0.1, 1), (0.1, 2), (0.2, 1), (0.2, 2)}
    assert all(t["seed"] == "randint(0, 100)" for t in trials)
    code, out, err = dry_run("tune", str(path), "--dry-run", "--runs-dir", str(tmp_path / "runs"))
    assert code == 0, err
    assert "8 trials" in out and "randint(0, 100)" in out and "imported ray: False" in out
    assert not (tmp_path / "runs").exists()


def test_submit_dry_run_checks_and_prints_without_contacting_a_cluster():
    code, out, err = dry_run("submit", "configs/mnist_sweep.yaml", "--tune", "--dry-run",
                             "--address", "http://127.0.0.1:1")          # nothing listens there
    assert code == 0, err
    assert "4 trials" in out and "imported ray: False" in out


def test_version_names_labrun_and_its_main_dependencies():
    from importlib import metadata

    code, out, err = dry_run("--version")
    assert code == 0, err
    text = " ".join(out.split())
    assert text.startswith(f"labrun {metadata.version('labrun')} (Python ")
    assert f"Ray {metadata.version('ray')}" in text and f"TensorFlow {metadata.version('tensorflow')}" in text


# ---------------------------------------------------------------------------- shell completion

COMPLETE = """
source "$1"
comp() { COMP_WORDS=("$@"); COMP_CWORD=$(($#-1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
         COMPREPLY=(); _shtab_labrun labrun "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
         printf '%s ' "${COMPREPLY[@]}"; echo; }
comp labrun tr
comp labrun ""
comp labrun train configs/cartp
comp labrun train configs/cartpole.yaml --dr
comp labrun eval "$2/"
"""


def test_bash_completion_offers_commands_options_config_files_and_run_folders(tmp_path):
    """The script `labrun completion bash` prints, sourced in bash and asked as the shell asks
    on TAB: commands, a command's options, YAML files for a config, folders for a run."""
    import subprocess

    (tmp_path / "runs" / "cartpole__0__20260101-000000").mkdir(parents=True)
    (tmp_path / "runs" / "notes.txt").write_text("")
    script = run_cli("completion", "bash")
    assert script.returncode == 0, script.stderr
    (tmp_path / "labrun.bash").write_text(script.stdout)
    out = subprocess.run(["bash", "-c", COMPLETE, "-", str(tmp_path / "labrun.bash"), str(tmp_path / "runs")],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, every, configs, options, folders = (line.split() for line in out.stdout.splitlines())
    assert first == ["train"]
    assert {"train", "tune", "resume", "eval", "runs", "keys", "submit", "completion"} <= set(every)
    assert sorted(configs) == ["configs/cartpole.yaml", "configs/cartpole_sweep.yaml"]
    assert options == ["--dry-run"]
    assert folders == [f"{tmp_path / 'runs' / 'cartpole__0__20260101-000000'}"]   # no files


def test_zsh_completion_names_every_command():
    script = run_cli("completion", "zsh")
    assert script.returncode == 0 and script.stdout.startswith("#compdef labrun")
    for command in ("train", "tune", "runs", "completion", "--dry-run", "_files -g '*.(yaml|yml)'"):
        assert command in script.stdout
    assert run_cli("completion", "fish").returncode == 2


# ----------------------------------------------------------------------------- a quiet console

NOISY_MODULE = """
import os
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"I0000 00:00:1796409018.704948   12068 port.cc:153] oneDNN custom operations are on.\\n")
os.write(2, b"E0000 00:00:1796408081.542970   31322 cuda_platform.cc:52] failed call to cuInit\\n")
os.write(2, b"a warning that matters\\n")
"""


@pytest.mark.parametrize("debug", [False, True])
def test_native_start_up_chatter_is_dropped_and_everything_else_kept(tmp_path, debug):
    """import_quietly drops TensorFlow's known start-up lines from fd 2 and writes the rest back;
    LABRUN_DEBUG keeps them all."""
    import subprocess
    import sys

    (tmp_path / "noisy.py").write_text(NOISY_MODULE)
    code = "from cluster.quiet import import_quietly; import_quietly('noisy')"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{REPO}", **({"LABRUN_DEBUG": "1"} if debug else {})}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert "a warning that matters" in lines
    assert len(lines) == (4 if debug else 1), lines


def test_commands_that_import_tensorflow_print_none_of_its_start_up_chatter():
    from cluster.quiet import CHATTER

    out = run_cli("tune", "configs/mnist_sweep.yaml", "--dry-run")   # imports the MNIST lab: TF
    assert out.returncode == 0, out.stderr
    assert not [line for line in out.stderr.splitlines() if CHATTER.match(line.strip())], out.stderr


def test_data_fetch_defaults_to_all_and_resume_takes_no_dry_run():
    from cluster.cli import build_parser

    assert build_parser().parse_args(["data", "fetch"]).names == ["all"]   # argparse takes the default
    out = run_cli("data", "fetch", "cifar")
    assert out.returncode == 2 and out.stderr.strip().startswith("error: data fetch: unknown dataset(s) cifar")
    out = run_cli("resume", "runs/x", "--dry-run")           # a resume has nothing to dry-run
    assert out.returncode == 2 and "--dry-run" in out.stderr


SLOW_NOISY_MODULE = """
import os, time
os.write(2, b"I0000 00:00:1796409018.704948   12068 port.cc:153] oneDNN custom operations are on.\\n")
time.sleep(5)
"""


def test_a_main_thread_error_while_a_thread_imports_quietly_reaches_the_console(tmp_path):
    """The prefetch thread imports TensorFlow quietly while the main thread starts Ray: an error
    the main thread prints then, and exits on, is printed at once, not held back and lost."""
    import subprocess
    import sys

    (tmp_path / "slow_noisy.py").write_text(SLOW_NOISY_MODULE)
    code = ("import sys, threading, time\n"
            "from cluster.quiet import import_quietly\n"
            "threading.Thread(target=import_quietly, args=('slow_noisy',), daemon=True).start()\n"
            "time.sleep(1)\n"
            "print('error: cannot reach the Ray cluster', file=sys.stderr)\n"
            "sys.exit(1)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{REPO}"}
    env.pop("LABRUN_DEBUG", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.splitlines() == ["error: cannot reach the Ray cluster"], out.stderr
