from pathlib import Path

import pytest
import yaml

from cluster.config.rl_experiment import ExperimentConfig, dump_experiment, load_experiment
from cluster.config.schema import ConfigError

REPO = Path(__file__).resolve().parents[1]
GOOD = """\
name: t
seed: 1
learner:
  lr: 0.01
  gamma: 0.99
rollout:
  num_workers: 2
stop:
  env_steps: 1000
"""


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path, text, overrides=()):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path, overrides)
    return str(info.value), path


def test_good_config_loads_frozen_with_defaults(tmp_path):
    cfg = load_experiment(write(tmp_path, GOOD))
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.learner.lr == 0.01 and cfg.rollout.num_workers == 2
    assert cfg.policy.hidden_sizes == (32,)
    with pytest.raises(AttributeError):
        cfg.seed = 3  # frozen


def test_set_overrides_go_through_the_same_types(tmp_path):
    cfg = load_experiment(write(tmp_path, GOOD), ["learner.lr=0.5", "policy.hidden_sizes=[64, 64]",
                                                  "rollout.num_workers=auto", "stop.env_steps=1e6"])
    assert cfg.learner.lr == 0.5 and cfg.policy.hidden_sizes == (64, 64)
    assert cfg.rollout.num_workers == "auto" and cfg.stop.env_steps == 1_000_000


def test_resolved_config_round_trips(tmp_path):
    cfg = load_experiment(write(tmp_path, GOOD), ["learner.baseline=time_mean"])
    dump_experiment(cfg, tmp_path / "resolved.yaml")
    assert load_experiment(tmp_path / "resolved.yaml") == cfg


BAD = [
    # (yaml text, --set overrides, what the message must say)
    (GOOD.replace("lr: 0.01", "lr: 0"), (), "line 4: learner.lr: expected a number > 0, got 0"),
    (GOOD.replace("lr: 0.01", "lr: -1e-3"), (), "learner.lr: expected a number > 0, got -0.001"),
    (GOOD.replace("gamma: 0.99", "gamma: 0"), (), "line 5: learner.gamma: expected a number > 0 and <= 1, got 0"),
    (GOOD.replace("gamma: 0.99", "gamma: 1.5"), (), "learner.gamma: expected a number > 0 and <= 1, got 1.5"),
    (GOOD.replace("num_workers: 2", "num_workers: 0"), (), "line 7: rollout.num_workers: expected an integer >= 1, got 0"),
    (GOOD.replace("num_workers: 2", "num_workers: many"), (), "rollout.num_workers: expected an integer >= 1 or one of 'auto', got a string ('many')"),
    (GOOD.replace("lr: 0.01", "lr: fast"), (), "line 4: learner.lr: expected a number > 0, got a string ('fast')"),
    (GOOD.replace("lr: 0.01", "lrr: 0.01"), (), "line 4: learner.lrr: unknown key; expected one of: lr, lr_final, lr_decay_steps, gamma,"),
    (GOOD + "optimiser: adam\n", (), "line 10: optimiser: unknown key; expected one of: name, seed,"),
    (GOOD.replace("seed: 1", "seed: 1.5"), (), "line 2: seed: expected an integer >= 0, got a number (1.5)"),
    (GOOD.replace("seed: 1", "seed: true"), (), "seed: expected an integer >= 0, got a boolean (True)"),
    (GOOD + "policy:\n  hidden_sizes: [32, x]\n", (), "policy.hidden_sizes[1]: expected an integer, got a string ('x')"),
    (GOOD + "policy:\n  hidden_sizes: [32, 0]\n", (), "policy.hidden_sizes[1]: expected an integer > 0, got 0"),
    (GOOD + "policy:\n  activation: gelu\n", (), "policy.activation: expected one of 'relu', 'tanh', got a string ('gelu')"),
    (GOOD.replace("stop:\n  env_steps: 1000", "stop:\n  mean_return: null\n  env_steps: null"), (),
     "stop.env_steps: at least one stop criterion must be set"),
    (GOOD.replace("name: t", "name: a/b"), (), "name: expected a name without '/'"),
    (GOOD + "policy: 3\n", (), "policy: expected a mapping of PolicyConfig keys, got a number (3)"),
    ("- just\n- a list\n", (), "expected a mapping of keys at the top, got a list"),
    ("learner:\n  lr: [0.1\n", (), "not valid YAML"),
    (GOOD, ("learner.lr=-1",), "--set: learner.lr: expected a number > 0, got -1"),
    (GOOD, ("learner.momentum=0.9",), "--set: learner.momentum: unknown key"),
    (GOOD, ("learner.lr",), "--set: expected key.path=value, got 'learner.lr'"),
    # Atari settings
    (GOOD + "env:\n  preprocess: pong40\n", (), "env.preprocess: 'pong40' is for Atari frames; CartPole-v1"),
    (GOOD + "env:\n  frameskip: 4\n", (), "env.frameskip: only Atari environments (ALE/ ids) have it"),
    (GOOD + "env:\n  id: ALE/Pong-v5\n  preprocess: pong60\n", (),
     "env.preprocess: expected one of 'none', 'pong80', 'pong40', got a string ('pong60')"),
    (GOOD + "env:\n  id: ALE/Pong-v5\n  observation: frame_and_difference\n", (),
     "env.observation: 'frame_and_difference' is of preprocessed frames; set preprocess too"),
    (GOOD + "env:\n  id: ALE/Pong-v5\n  repeat_action_probability: 1.5\n", (),
     "env.repeat_action_probability: expected a number >= 0 and <= 1, got 1.5"),
    (GOOD + "env:\n  id: ALE/Pong-v5\n  action_subset: [2]\n", (), "env.action_subset"),
    (GOOD + "policy:\n  conv:\n    - {filters: 32, kernel: 5, strides: 2}\n", (),
     "policy.conv[0].strides: unknown key; expected one of: filters, kernel, stride"),
    (GOOD + "policy:\n  conv:\n    - {filters: 0, kernel: 5}\n", (),
     "policy.conv[0].filters: expected an integer >= 1, got 0"),
    # pieces of games end at a point: only exact where the returns restart there
    (GOOD, ("rollout.steps_per_env=500",), "rollout.steps_per_env: needs learner.reset_on_reward"),
    (GOOD, ("rollout.steps_per_env=500", "learner.reset_on_reward=true", "rollout.episodes_per_env=2"),
     "rollout.episodes_per_env: not used with rollout.steps_per_env"),
    (GOOD, ("rollout.steps_per_env=0",), "rollout.steps_per_env: expected an integer >= 1, got 0"),
    (GOOD, ("rollout.steps_per_env=500", "learner.reset_on_reward=true", "learner.baseline=time_mean"),
     "learner.baseline: 'time_mean' compares returns at the same step of each episode"),
    (GOOD, ("learner.lr_final=1e-4",), "learner.lr_decay_steps: set lr_final and lr_decay_steps together"),
    (GOOD, ("learner.lr_decay_steps=1000",), "learner.lr_final: set lr_final and lr_decay_steps together"),
    (GOOD, ("learner.value_steps=4",), "learner.value_steps: 4 steps of a value baseline need baseline: value"),
    (GOOD, ("learner.value_steps=0",), "learner.value_steps: expected an integer >= 1, got 0"),
]


@pytest.mark.parametrize("text, overrides, expected", BAD)
def test_bad_configs_say_where_and_what(tmp_path, text, overrides, expected):
    message, path = error_of(tmp_path, text, overrides)
    assert expected in message
    if not overrides:
        assert message.startswith(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: no such file"):
        load_experiment(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    from cluster.labs import load, load_sweep

    data = yaml.safe_load(path.read_text())
    if "experiment" in data:                      # a sweep file
        cfg = load_sweep(path).cfg
    else:
        lab, cfg = load(path)
        assert lab.name == data.get("lab", "rl")
    assert cfg.name and data["name"] == cfg.name


def test_the_configuration_reference_in_docs_is_what_labrun_keys_generates():
    """docs/configuration.md never drifts from the config classes: regenerate it with
    `labrun keys --markdown > docs/configuration.md`."""
    from cluster.config.reference import markdown
    from cluster.labs import LABS

    generated = markdown((name, lab.experiment) for name, lab in LABS.items())
    assert "| `learner.lr` |" in generated and "## Lab `dbvae`" in generated
    assert (REPO / "docs" / "configuration.md").read_text() == generated


# ------------------------------------------------------------------------- JSON Schemas for editors

def test_every_shipped_config_points_at_its_schema_and_follows_it():
    """configs/schema/ holds what `labrun keys --json-schema` generates from the config classes;
    every experiment and sweep file names its schema on its first line (the YAML language
    server's comment) and validates against it; a bad value, an unknown key and an unknown lab
    do not."""
    import json

    import jsonschema
    import yaml

    from cluster import labs
    from cluster.config import json_schema
    from cluster.config.sweep import SweepConfig
    from helpers import REPO

    schemas = {"experiment": json_schema.experiment_schema({n: lab.experiment for n, lab in labs.LABS.items()}),
               "sweep": json_schema.sweep_schema(SweepConfig)}
    for kind, schema in schemas.items():
        shipped = json.loads((REPO / "configs" / "schema" / json_schema.FILES[kind]).read_text())
        assert shipped == schema, "configs/schema/ is stale: run `labrun keys --json-schema configs/schema`"
        jsonschema.Draft202012Validator.check_schema(schema)
    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert len(configs) >= 11
    for path in configs:
        text = path.read_text()
        data = yaml.safe_load(text)
        kind = "sweep" if "search_space" in data else "experiment"
        assert text.splitlines()[0] == f"# yaml-language-server: $schema=schema/{json_schema.FILES[kind]}", path
        errors = [e.message for e in jsonschema.Draft202012Validator(schemas[kind]).iter_errors(data)]
        assert not errors, f"{path.name}: {errors}"
    validator = jsonschema.Draft202012Validator(schemas["experiment"])
    cartpole = yaml.safe_load((REPO / "configs" / "cartpole.yaml").read_text())
    for broken in ({**cartpole, "learner": {**cartpole["learner"], "lr": -1}},
                   {**cartpole, "learner": {**cartpole["learner"], "lrr": 0.1}},
                   {**cartpole, "lab": "nosuch"},
                   {**yaml.safe_load((REPO / "configs" / "mnist.yaml").read_text()), "rollout": {}}):
        assert not validator.is_valid(broken), broken
