"""Which params file a Snakemake run uses, from Snakemake's ``config`` alone.

The Snakefile has no ``configfile:`` directive, so ``config`` holds exactly what the
command line gave (documented Snakemake behaviour: ``--configfile`` files and ``--config``
values, merged). The lf2 jobs read one params file, passed to each as ``--params``:

- nothing given: ``params/default.yaml``;
- ``--config params=PATH``: that file;
- ``--configfile FILE``: ``config`` is FILE's content, and the params file is the one file
  of ``params/`` with exactly that content (``workflow.*`` keys aside); a file elsewhere
  is named with ``--config params=PATH``.

``--config`` may otherwise set only ``workflow.*`` (read by the Snakefile, never by a job):
a value Snakemake knew but the jobs did not would make the results lie.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lf2.errors import ParamsError

DEFAULT_PARAMS = "params/default.yaml"
PARAMS_DIR = "params"
#: the config keys that are not params values
PARAMS_KEY, WORKFLOW_KEY = "params", "workflow"


def params_file_from_config(config: dict[str, Any], workdir: str | os.PathLike[str]) -> tuple[str, list[str]]:
    """``(params file relative to workdir, workflow overrides "workflow.k=v")`` for ``config``."""
    from lf2.params_chain import read_mapping
    from lf2.workflow_dag import relative_params_file

    cfg = dict(config)
    workflow = cfg.pop(WORKFLOW_KEY, None) or {}
    if not isinstance(workflow, dict):
        raise ParamsError(f"--config workflow={workflow!r}: expected a mapping, e.g. {{gpu_slot: true}}")
    overrides = [f"{WORKFLOW_KEY}.{k}={v}" for k, v in workflow.items()]
    given = cfg.pop(PARAMS_KEY, None)
    if given is not None:
        if cfg:
            raise ParamsError(_only_workflow(sorted(cfg)))
        return relative_params_file(Path(workdir, str(given)), workdir), overrides
    if not cfg:
        return DEFAULT_PARAMS, overrides
    matches, nearest = [], sorted(cfg)
    for path in sorted(Path(workdir, PARAMS_DIR).glob("*.yaml")):
        raw = read_mapping(path)
        raw.pop(WORKFLOW_KEY, None)
        differ = sorted(k for k in set(raw) | set(cfg) if raw.get(k) != cfg.get(k))
        if not differ:
            matches.append(path)
        elif len(differ) < len(nearest):
            nearest = differ
    if len(matches) == 1:
        return relative_params_file(matches[0], workdir), overrides
    if len(matches) > 1:
        names = ", ".join(str(m) for m in matches)
        raise ParamsError(f"--configfile: its content matches several params files ({names}); "
                          "name one with --config params=PATH")
    raise ParamsError(
        "the --configfile given is not one of params/*.yaml (name a params file elsewhere with "
        "--config params=PATH), or --config set keys other than workflow.*: "
        + _only_workflow(nearest)
    )


def _only_workflow(keys: list[str]) -> str:
    return (
        f"--config {', '.join(keys)}: only workflow.* keys can be set with --config "
        "(e.g. --config 'workflow={gpu_slot: true}') besides params=PATH; put other changes in "
        "a params file and pass it with --configfile or --config params=PATH"
    )
