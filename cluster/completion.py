"""``labrun completion bash|zsh``: the shell's completion script, generated from the argument
parser by shtab, with YAML files offered where an experiment or sweep file goes and folders where
a run or runs folder goes."""

from __future__ import annotations

import argparse

# What shtab completes: YAML files (and folders to descend into), or folders.
YAML_FILE = {"bash": "_labrun_yaml_files", "zsh": "_files -g '*.(yaml|yml)'"}
FOLDER = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/"}
BASH_PREAMBLE = """
_labrun_yaml_files() {
  compgen -d -S / -- "$1"
  compgen -f -- "$1" | grep -E '[.]ya?ml$'
}
"""


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``parser`` for ``shell`` (bash or zsh)."""
    import shtab

    for action in _actions(parser):
        if action.dest == "config":
            action.complete = YAML_FILE          # experiment and sweep files
        elif action.dest in ("run_dir", "runs_dir"):
            action.complete = FOLDER             # run, sweep and runs folders
    return shtab.complete(parser, shell, preamble={"bash": BASH_PREAMBLE})


def _actions(parser: argparse.ArgumentParser):
    """Every argument of ``parser`` and of its sub-commands' parsers."""
    for action in parser._actions:   # argparse keeps them there; shtab reads the same
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)
