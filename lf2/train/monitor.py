"""Optional test-split evaluation during fine-tuning, for curves only.

Off by default (``finetune.eval_every: 0``). When on, its numbers go into the epoch log
under ``eval`` with a note that they are monitoring only: they never select a checkpoint —
the reported model is always the last epoch's.
"""

from __future__ import annotations

import torch

NOTE = "test split, monitoring only; never used for model selection"


def evaluate_model(model: torch.nn.Module, manifest, *, height: int, width: int, batch_size: int,
                   flip: bool, device: torch.device) -> dict:
    """mAP / CMC of ``model`` on a manifest's query and gallery splits (cosine distance)."""
    from lf2.eval import evaluate_features
    from lf2.eval.features import extract_features, iter_eval_batches

    feats = {}
    for split in ("query", "gallery"):
        batches = iter_eval_batches(manifest.paths(split), height, width, batch_size)
        feats[split] = extract_features(model, batches, flip=flip, device=device)
    return evaluate_features(feats["query"], feats["gallery"], manifest.pids("query"), manifest.pids("gallery"),
                             manifest.camids("query"), manifest.camids("gallery"))


def maybe_evaluate(params: dict, model: torch.nn.Module, manifest, epoch: int, device: torch.device) -> dict | None:
    every = params["finetune"].get("eval_every", 0)
    if not every or epoch % every:
        return None
    from lf2.settings import evaluate_settings, input_settings, model_settings
    from lf2.train.runtime import eval_mode

    inp = input_settings(params)
    with eval_mode(model):
        res = evaluate_model(model, manifest, height=inp.height, width=inp.width,
                             batch_size=evaluate_settings(params).batch_size,
                             flip=model_settings(params).flip_test, device=device)
    return {"mAP": float(res["mAP"]), "rank1": float(res["cmc"][0]), "note": NOTE}
