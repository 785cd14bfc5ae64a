"""What ``labrun submit`` uploads (cluster/infra/upload.py): exactly the allow-listed code and
configs, no secret, nothing oversized; and that the staged folder can start the job. The real
submission to a cluster is in test_cluster_mode.py."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cluster import cli
from cluster.errors import UsageError
from cluster.infra import jobs, upload
from helpers import REPO

ALLOWED = ["rl/__init__.py", "rl/returns.py", "rl/deep/nested.py", "supervised/faces.py",
           "cluster/__init__.py", "cluster/cli.py", "configs/a.yaml", "configs/cluster/b.yml",
           "pyproject.toml", "README.md"]
NOT_UPLOADED = [".env", "id_rsa", "id_rsa.pub", "id_ed25519", ".netrc", "gcp-key.json",
                "service-account.json", "credentials", "data/train_face.h5", "big.h5",
                "runs2/cartpole/metrics.jsonl", "runs/x/checkpoint.pkl", ".git/config",
                ".venv/bin/python", "docs/security.md", "my_exps/x.yaml", "notes.txt",
                "configs/token", "configs/.env", "configs/.hidden.yaml", "configs/data.h5",
                "rl/__pycache__/returns.cpython-311.pyc", "rl/notes.txt", "rl/.secret.py",
                "cluster/key.pem", "supervised/weights.h5", "configs/cluster/id_rsa"]


def fake_project(root: Path, files: list[str]) -> Path:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (5000 if name.endswith(".h5") else len(name)))
    return root


def staged_files(folder: Path) -> set[str]:
    """Every entry under ``folder`` that is not a folder, relative (links included)."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()
            or p.is_symlink()}


def test_only_the_allow_list_is_staged_as_plain_copies(tmp_path):
    project = fake_project(tmp_path / "project", ALLOWED + NOT_UPLOADED)
    dest = tmp_path / "upload"
    dest.mkdir()
    staged = upload.stage(project, dest)
    assert sorted(staged.files) == sorted(ALLOWED)
    assert staged_files(dest) == set(ALLOWED)
    assert staged.total_bytes == sum(len(name) for name in ALLOWED)
    for name in ALLOWED:
        copy = dest / name
        assert not copy.is_symlink() and copy.read_bytes() == (project / name).read_bytes()
    assert staged.summary() == f"{len(ALLOWED)} files, {staged.total_bytes / 1024:.1f} KiB"


def test_the_experiment_file_goes_up_even_outside_configs(tmp_path):
    project = fake_project(tmp_path / "project", ALLOWED + ["my_exps/x.yaml", "my_exps/y.yaml"])
    dest = tmp_path / "upload"
    dest.mkdir()
    staged = upload.stage(project, dest, extra=[project / "my_exps" / "x.yaml"])
    assert staged_files(dest) == {*ALLOWED, "my_exps/x.yaml"} == set(staged.files)  # not y.yaml


def test_a_submitted_sweep_takes_its_experiment_file_along(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli.infra, "submit", lambda *args, **kw: seen.update(kw) or 0)
    assert cli.main(["submit", "--tune", str(REPO / "configs" / "mnist_sweep.yaml")]) == 0
    assert seen["extra"] == [REPO / "configs" / "mnist.yaml"]


@pytest.mark.parametrize("secret", ["configs/hf_token.yaml", "configs/cluster/gcp-credentials.yml",
                                    "configs/service_account.yaml", "configs/id_ed25519.yaml",
                                    "my_exps/token.yaml"])
def test_a_secret_looking_name_inside_the_allow_list_is_refused_by_name(tmp_path, secret):
    project = fake_project(tmp_path / "project", [*ALLOWED, secret])
    dest = tmp_path / "upload"
    dest.mkdir()
    extra = [project / secret] if secret.startswith("my_exps") else []
    with pytest.raises(UsageError, match="refusing to upload .*" + Path(secret).name):
        upload.stage(project, dest, extra)
    assert staged_files(dest) == set()   # refused before anything is copied


def test_python_modules_go_up_whatever_their_names_say(tmp_path):
    """Modules are the code the job runs: labrun's own cluster/infra/auth_token.py, a lab's
    tokenizer.py. Only key files' patterns (id_rsa*, *.pem, .env...) refuse them."""
    modules = ["cluster/infra/auth_token.py", "supervised/tokenizer.py", "rl/secrets.py"]
    project = fake_project(tmp_path / "project", [*ALLOWED, *modules])
    dest = tmp_path / "upload"
    dest.mkdir()
    upload.stage(project, dest)
    assert set(modules) <= staged_files(dest)
    assert upload.looks_secret("id_rsa.py") and not upload.looks_secret("auth_token.py")


def test_links_out_of_the_project_and_files_outside_it_are_refused(tmp_path):
    project = fake_project(tmp_path / "project", ALLOWED)
    outside = fake_project(tmp_path / "home", [".ssh/config.yaml", "exp.yaml"])
    (project / "configs" / "innocent.yaml").symlink_to(outside / ".ssh" / "config.yaml")
    dest = tmp_path / "upload"
    dest.mkdir()
    with pytest.raises(UsageError, match="innocent.yaml: a symbolic link to a file outside"):
        upload.stage(project, dest)
    (project / "configs" / "innocent.yaml").unlink()
    (project / "configs" / "linked").symlink_to(outside, target_is_directory=True)
    assert staged_files(dest) == set() and len(upload.stage(project, dest).files) == len(ALLOWED)
    with pytest.raises(UsageError, match="must be inside the project"):
        upload.stage(project, tmp_path / "upload2", extra=[outside / "exp.yaml"])


def test_an_oversized_upload_is_refused_naming_its_largest_files(tmp_path):
    project = fake_project(tmp_path / "project", ALLOWED)
    (project / "configs" / "huge.yaml").write_bytes(b"#" * 3 * 2**20)
    (project / "rl" / "big.py").write_bytes(b"#" * 2 * 2**20)
    with pytest.raises(UsageError, match=r"5\.0 MiB, over the 1\.0 MiB allowed; the largest "
                                         r"files: configs/huge\.yaml \(3\.0 MiB\), rl/big\.py"):
        upload.stage(project, tmp_path, max_bytes=2**20)


def test_submit_refuses_an_oversized_upload_with_exit_2_before_connecting(monkeypatch, capsys):
    monkeypatch.setattr(upload, "MAX_BYTES", 1000)
    monkeypatch.setattr(jobs, "connect", lambda address: pytest.fail("connected"))
    assert cli.main(["submit", str(REPO / "configs" / "cartpole.yaml"),
                     "--address", "http://127.0.0.1:9"]) == 2
    out = capsys.readouterr()
    assert "the upload would be" in out.err and "the largest files: " in out.err
    assert "uploading" not in out.out


def test_the_job_spec_uploads_the_staged_folder_only(tmp_path):
    entry, env = jobs.job_spec("train", str(REPO / "configs" / "cartpole.yaml"), [],
                               "http://10.0.0.1:8265", "/shared/runs", None, str(tmp_path))
    assert env["working_dir"] == str(tmp_path) and "excludes" not in env
    assert entry.startswith("python -m cluster.cli train configs/cartpole.yaml --address auto")


def test_a_remote_jobs_runtime_env_installs_the_dependencies_and_leaves_rays_version_alone(tmp_path):
    """For a cluster on another machine: every dependency in the pip runtime env, Ray's unpinned
    (the cluster's Ray satisfies it; Ray refuses an env that changes its own version, and Tune's
    extras still come), and Ray's own validation accepts it."""
    from importlib import metadata

    from ray.runtime_env import RuntimeEnv

    _, env = jobs.job_spec("train", str(REPO / "configs" / "cartpole.yaml"), [],
                           "http://10.0.0.1:8265", "/shared/runs", None, str(tmp_path))
    names = {jobs._name(spec) for spec in env["pip"]}
    assert "ray[default,tune]" in env["pip"] and not [s for s in env["pip"] if s.startswith("ray") and "=" in s]
    assert {"tensorflow", "gymnasium", "pyarrow"} <= names
    assert len(env["pip"]) == len(jobs.project_dependencies())   # Ray's extras' packages come too
    validated = RuntimeEnv(**env)                       # raises on anything Ray would refuse
    assert validated.pip_config()["packages"] == env["pip"]
    assert jobs.pinned_ray_version() == metadata.version("ray")
    _, local = jobs.job_spec("train", str(REPO / "configs" / "cartpole.yaml"), [],
                             "http://127.0.0.1:8265", None, None, str(tmp_path))
    assert "pip" not in local                           # this machine's Python has them all


def test_a_remote_job_with_trackers_installs_their_extras_and_gets_where_they_write(tmp_path, monkeypatch):
    from ray.runtime_env import RuntimeEnv

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.team:5000")
    monkeypatch.setenv("WANDB_API_KEY", "secret")
    _, env = jobs.job_spec("train", str(REPO / "configs" / "cartpole.yaml"), [],
                           "http://10.0.0.1:8265", "/shared/runs", None, str(tmp_path),
                           extras=["mlflow", "wandb"])
    with open(REPO / "pyproject.toml", "rb") as f:
        optional = tomllib.load(f)["project"]["optional-dependencies"]
    assert env["pip"][-2:] == optional["mlflow"] + optional["wandb"]
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "http://mlflow.team:5000"
    assert "WANDB_API_KEY" not in env["env_vars"]         # credentials never ride in a job's env
    RuntimeEnv(**env)


def test_submit_says_when_the_clusters_ray_differs_from_the_pinned_one():
    from types import SimpleNamespace

    pinned = jobs.pinned_ray_version()
    same = SimpleNamespace(_server_ray_version=pinned, labrun_address="http://h:8265")
    other = SimpleNamespace(_server_ray_version="2.9.3", labrun_address="http://h:8265")
    assert jobs.ray_version_note(same) is None
    import inspect

    from ray.dashboard.modules.dashboard_sdk import SubmissionClient  # where the real one keeps it
    assert "self._server_ray_version = " in inspect.getsource(SubmissionClient)
    assert jobs.ray_version_note(other).startswith(
        f"warning: the cluster at http://h:8265 runs Ray 2.9.3; labrun is tested with Ray {pinned}")


def test_the_staged_project_starts_the_job_entrypoint(tmp_path):
    """What the job runs first, `python -m cluster.cli`, from the staged folder alone: the
    packages import from it (not from this checkout) and every lab's keys are listed."""
    with upload.staged(REPO, [REPO / "configs" / "cartpole.yaml"]) as staged:
        assert "configs/cartpole.yaml" in staged.files and "README.md" in staged.files
        assert not any(name.startswith(("tests/", "docs/", "runs/", ".")) for name in staged.files)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        where = subprocess.run([sys.executable, "-c", "import cluster.cli, rl, supervised; "
                                "print(cluster.cli.__file__)"], cwd=staged.folder, env=env,
                               capture_output=True, text=True, timeout=120)
        assert where.stdout.strip() == str(staged.folder / "cluster" / "cli.py"), where.stderr
        keys = subprocess.run([sys.executable, "-m", "cluster.cli", "keys", "--markdown"],
                              cwd=staged.folder, env=env, capture_output=True, text=True,
                              timeout=300)
        assert keys.returncode == 0, keys.stderr
        assert "learner.gamma" in keys.stdout or "gamma" in keys.stdout
    assert not staged.folder.exists()   # the temporary folder is gone once submitted
