"""The model card (``README.md``) of a router folder: Hub metadata plus what a user needs to trust it.

Rendered from the folder's own files (config.json, metrics.json, training_config.yaml,
provenance.json), so a card can be rebuilt at any time, e.g. with the repo id when pushing.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from routertrain.hub.folder import router_settings

DEFAULT_LICENSE = "apache-2.0"  # push.license overrides it; a router may need its base encoder's license

ROWS = (
    ("routing_acc", "this router"),
    ("best_single_acc", "best single model (chosen on train)"),
    ("task_prior_acc", "task-prior router (best model per task on train)"),
    ("best_baseline_acc", "best frozen-embedding baseline"),
    ("oracle_acc", "oracle (best model per query)"),
    ("bayes_acc", "Bayes ceiling (synthetic data only)"),
)


def _read(folder: Path, name: str, default=None):
    path = folder / name
    if not path.is_file():
        return default
    text = path.read_text()
    if name.endswith(".json"):
        return json.loads(text)
    if name.endswith((".yaml", ".yml")):
        return yaml.safe_load(text)
    return text


def _is_hub_id(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and not Path(name).exists()


# the numbers of the card's model-index, per evaluated split: (metrics.json key, metric name)
EVAL_METRICS = (
    ("routing_acc", "routing accuracy"),
    ("oracle_acc", "oracle accuracy (best model per query)"),
    ("best_single_acc", "best single model accuracy"),
    ("task_prior_acc", "task-prior router accuracy"),
)


def dataset_id(training: dict, prov: dict) -> tuple[str, str]:
    """(type, name) of the evaluated dataset: its Hub id when the data came from the Hub, else the
    dataset's own name (the built dataset's, not the loader's), e.g. ``routerdc``."""
    data_cfg = (training or {}).get("data", {}) or {}
    path = data_cfg.get("path") or ""
    if data_cfg.get("name") == "table" and _is_hub_id(path):
        return path, path
    name = (prov.get("data") or {}).get("name") or data_cfg.get("name") or "custom"
    return str(name), str(name)


def metadata(router_config: dict, metrics: dict, training: dict, repo_id: str | None, prov: dict | None = None) -> ModelCardData:
    """The card's Hub metadata, with a ``model-index`` of the evaluation results on the named dataset and split."""
    base = router_config.get("base_model") or ""
    dataset_type, dataset_name = dataset_id(training, prov or {})
    results = [
        EvalResult(
            task_type="text-classification", task_name="LLM routing", dataset_type=dataset_type, dataset_name=dataset_name,
            dataset_split=split, metric_type="accuracy", metric_name=name, metric_value=round(float(metrics[split][key]), 4),
        )
        for split in ("validation", "test") if split in metrics
        for key, name in EVAL_METRICS if key in metrics[split]
    ]
    return ModelCardData(
        license=((training or {}).get("push") or {}).get("license") or DEFAULT_LICENSE,
        library_name="routertrain",
        pipeline_tag="text-classification",
        tags=["routertrain", "llm-router", "routing", "multi-label-classification"],
        base_model=base if _is_hub_id(base) else None,
        datasets=[dataset_type] if _is_hub_id(dataset_type) else None,
        model_name=repo_id.split("/")[-1] if repo_id else "router",
        eval_results=results or None,
    )


def _eval_table(metrics: dict) -> str:
    splits = [s for s in ("validation", "test") if s in metrics]
    if not splits:
        return "No evaluation results were recorded.\n"
    lines = ["| router | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for key, label in ROWS:
        if any(key in metrics[s] for s in splits):
            cells = [f"{metrics[s][key]:.4f}" if key in metrics[s] else "-" for s in splits]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    n = " / ".join(f"{s} {metrics[s].get('n_queries', '?')}" for s in splits)
    lines.append(f"\nRouting accuracy = mean correctness of the chosen model. Queries: {n}.")
    baselines = [f"{metrics[s]['best_baseline']} on {s}" for s in splits if "best_baseline" in metrics[s]]
    if baselines:
        lines.append(f"Best frozen-embedding baseline: {', '.join(baselines)} (routertrain evaluate run=...).")
    return "\n".join(lines) + "\n"


FROZEN_BASELINES = ("knn", "logreg", "mlp", "mf", "kmeans", "tfidf", "frozen")


def with_baseline(metrics: dict, evaluation: dict | None) -> dict:
    """Add the best frozen-embedding baseline of ``routertrain evaluate run=...`` (saved as
    evaluation.json in the router folder) to the metrics of the split it was evaluated on."""
    if not evaluation:
        return metrics
    split = evaluation.get("data", {}).get("split", "test")
    routers = {n: r for n, r in evaluation.get("routers", {}).items() if n in FROZEN_BASELINES}
    if not routers or split not in metrics:
        return metrics
    best = max(routers, key=lambda n: routers[n]["accuracy"]["value"])
    return {**metrics, split: {**metrics[split], "best_baseline_acc": routers[best]["accuracy"]["value"], "best_baseline": best}}


def describe(setting: dict | None) -> str:
    """One line for the card and the command line."""
    if not setting:
        return "no calibration: cost weight 0"
    target, reached = setting["target"], setting.get("reached", {})
    if "max_share" in target:
        goal = f"at most {target['max_share']['share']:.1%} of calls to {', '.join(target['max_share']['models'])} (reached {reached.get('share', float('nan')):.1%})"
    elif "mean_cost" in target:
        goal = f"mean cost per query at most {target['mean_cost']:g} (reached {reached.get('mean_cost', float('nan')):g})"
    else:
        goal = (f"keep {target['accuracy_share']:.1%} of the routing accuracy at cost weight 0 "
                f"(reached {reached.get('accuracy', float('nan')):.4f} of {reached.get('accuracy_at_zero', float('nan')):.4f}, mean cost {reached.get('mean_cost', float('nan')):g})")
    on = "the named models priced 1, the others 0" if setting.get("penalised") else "the router's model costs"
    among = f" choosing among {', '.join(setting['models'])}" if setting.get("models") else ""
    return f"{goal}: cost weight {setting['cost_weight']:.6g} on {on}, calibrated on {setting.get('n_queries', '?')} queries{among}"


def _setting(config: dict) -> str:
    """What ``route()`` does with no arguments: the calibrated setting (``routertrain.hub.calibrate``), if any."""
    if not config.get("calibration"):
        return "Not calibrated: `route()` uses cost weight 0 (the most likely correct model). Calibrate with `python -m routertrain.cli.calibrate`."
    return f"Calibrated: {describe(config['calibration'])}. `route()` uses it unless given `cost_weight` or `max_cost`."


REFERENCES = (("best_single_acc", "the best single model"), ("task_prior_acc", "the task-prior router"))


def shortfalls(report: dict, split: str = "validation") -> list[str]:
    """One sentence per reference router (best single, task prior; both chosen on train) that the
    router's routing accuracy in ``report`` does not beat, with the numbers; empty when it beats all."""
    acc = report.get("routing_acc")
    if acc is None:
        return []
    return [
        f"on {split}, this router ({acc:.4f}) does not beat {label} ({report[key]:.4f}): {acc - report[key]:+.4f}"
        for key, label in REFERENCES
        if key in report and not acc > report[key]
    ]


def _losing_note(metrics: dict) -> str:
    """A limitation per reference router (chosen on train) that the router does not beat on validation."""

    lines = shortfalls(metrics.get("validation", {}))
    return "".join(f"- **It does not beat a simpler router**: {line}. Prefer that router for this data.\n" for line in lines)


def _search_section(study: dict | None) -> str:
    """How the router's settings were chosen, when it is the best trial of a search (study.json)."""
    if not study:
        return ""
    counts = study.get("trials", {})
    space = "\n".join(f"| `{key}` | {spec} | {study['params'].get(key, '-')} |" for key, spec in study.get("space", {}).items())
    return f"""## Hyperparameter search

This router is trial {study['trial']} of the Optuna study `{study['study']}` (storage `{study['storage']}`, search space
`{study['space_file']}`): {counts.get('complete', 0)} trials complete, {counts.get('pruned', 0)} pruned, {counts.get('fail', 0)} failed.
Sampler {study["sampler"]}; pruner: {study["pruner"]}; chosen by {study["choice"]}.
Its validation routing accuracy ({study['validation_routing_acc']:.4f}) is the maximum over the trials, so it is
optimistic; the test split, scored once on this router only, is the unbiased estimate.

| setting | searched | chosen |
|---|---|---|
{space}

"""


def _ensemble_section(ensemble: dict | None) -> str:
    """The members of an ensemble folder (ensemble.json) and their own validation accuracy."""
    if not ensemble:
        return ""
    rows = "\n".join(f"| `{m['folder']}` | {m['source']} | {m['validation_routing_acc'] if m['validation_routing_acc'] is not None else '-'} |" for m in ensemble["members"])
    return f"""## Ensemble

This router is an ensemble: {ensemble['combine']}, over {len(ensemble['members'])} routers of the same pool
(the training configuration below is the first member's).

| member | trained as | its validation routing accuracy |
|---|---|---|
{rows}

"""


def _blend_section(spec: dict | None, of_ensemble: bool = False) -> str:
    """How a blend folder (blend.json) weighs the fine-tuned router (or ensemble), kNN and the soft task prior."""
    if not spec:
        return ""
    acc = spec.get("validation_acc", {})
    rows = "\n".join(f"| {name} | {spec['weights'][name]:g} | {acc.get(name, float('nan')):.4f} |" for name in ("finetuned", "knn", "prior"))
    own = ("the ensemble's (the members' mean above), kNN over the members' pooled embeddings of the training queries side by side"
           if of_ensemble else "the fine-tuned router's own, kNN over its pooled embeddings of the training queries")
    return f"""## Blend

This router blends three estimates of P(correct) per model: {own} (k = {spec['k']}), and the task prior made soft (the share of each
task among those k neighbours times the task's mean label on train), so no task label is needed at
inference. k and the weights were chosen on validation ({spec.get('average', 'micro')} average) over a grid of
{len(spec.get('weights_validation_acc', {}))} weightings; the blend's validation accuracy ({acc.get('blend', float('nan')):.4f}) is the best
of that grid, so it is optimistic, and test was scored once, on the chosen blend only.

| component | weight | validation routing accuracy alone |
|---|---|---|
{rows}

"""


def render(folder: str | Path, repo_id: str | None = None, final: str | Path | None = None) -> str:
    """The card's full text for the router folder ``folder`` (being written as ``final``, when given)."""
    folder = Path(folder)
    config = router_settings(folder)
    metrics = with_baseline(_read(folder, "metrics.json", {}) or {}, _read(folder, "evaluation.json"))
    training = _read(folder, "training_config.yaml", {}) or {}
    prov = _read(folder, "provenance.json", {}) or {}
    models, costs = config.get("models", []), config.get("costs")
    data = prov.get("data", {})
    load_from = repo_id or str(final or folder)

    pool = ["| # | model | cost per query |", "|---|---|---|"]
    for i, name in enumerate(models):
        pool.append(f"| {i} | {name} | {costs[i] if costs else 'unknown'} |")
    sizes = data.get("info", {}).get("n_rows", {})
    size_text = ", ".join(f"{k} {v}" for k, v in sizes.items()) or "not recorded"
    packages = ", ".join(f"{k} {v}" for k, v in prov.get("packages", {}).items())

    body = f"""# LLM router: {len(models)}-model pool, fine-tuned from {config.get('base_model', 'an encoder')}

This router reads a query and estimates, for each model of its pool, the probability that the model
answers it correctly (one sigmoid output per model). Routing picks the most likely correct model,
optionally trading off cost. Trained with routertrain by fine-tuning the
encoder end to end with a multi-label head.

## Usage

```python
from routertrain import Router

router = Router.from_pretrained("{load_from}")
probs = router.predict(["Prove that the square root of 2 is irrational."])  # shape (1, {len(models)})
print(router.route(["Prove that the square root of 2 is irrational."]))
print(router.route(["Summarise this paragraph."], cost_weight=0.01))  # needs costs
```

Command line: `routertrain route {load_from} "your query"`.

With transformers alone (after `import routertrain`, which registers the model class):

```python
from transformers import pipeline

classify = pipeline("text-classification", model="{load_from}", function_to_apply="sigmoid", top_k=None)
print(classify("Prove that the square root of 2 is irrational."))  # P(correct) per model
```

## Model pool (output order)

{chr(10).join(pool)}

## Default routing setting

{_setting(config)}

## Evaluation

{_eval_table(metrics)}
## Training data

- dataset: `{data.get('name', training.get('data', {}).get('name', 'unknown'))}`, fingerprint `{prov.get('data_fingerprint', 'unknown')}`
- queries: {size_text}
- {data.get('info', {}).get('kind', 'real benchmark results') if data else 'see the training config'}

## Training configuration

Recipe `{training.get('recipe') or 'none'}`; resolved config:

```yaml
{yaml.safe_dump(training, sort_keys=False).strip()}
```

Provenance: git revision `{prov.get('git_revision', 'unknown')}`; {packages or 'package versions not recorded'}.

{_search_section(_read(folder, "study.json"))}{_ensemble_section(_read(folder, "ensemble.json"))}{_blend_section(_read(folder, "blend.json"), of_ensemble=(Path(folder) / "ensemble.json").is_file())}## Limitations

- The router only knows the models of its pool, in the order above; a model outside it cannot be chosen.
- Its probabilities are learnt from the training data's queries and labels: on queries unlike those
  (other domains, languages, formats) they may be poorly calibrated, and routing accuracy may fall
  to that of the best single model or below.
- Model behaviour drifts with new model versions; re-evaluate before relying on the routes.
- The evaluation numbers above come from the splits named there; they are estimates with sampling
  error, not guarantees.
"""
    body += _losing_note(metrics)
    card = ModelCard(f"---\n{metadata(config, metrics, training, repo_id, prov).to_yaml()}\n---\n\n{body}")  # parsed back: a bad model-index fails here
    return str(card)
