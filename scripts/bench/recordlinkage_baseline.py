"""The published Febrl baseline (../shared/data/README.md), measured on this machine.

recordlinkage 0.16: blocking on given_name OR surname OR date_of_birth; Jaro-Winkler on names,
exact date of birth, suburb, state and social security id, string similarity on address_1;
unsupervised ECM classifier; one core. Prints one JSON line per file: candidate pairs, seconds
(indexing, comparing and classifying, not reading) and pairwise precision / recall / F1.

Usage: python3 recordlinkage_baseline.py DATA_DIR febrl1 [febrl2 ...]
"""

import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pandas as pd  # noqa: E402
import recordlinkage  # noqa: E402
from recordlinkage.index import Block  # noqa: E402


def run(data_dir, name):
    df = pd.read_csv(
        os.path.join(data_dir, f"{name}.csv"), dtype=str, keep_default_na=False
    ).set_index("rec_id")
    df = df.replace("", None)
    truth = pd.read_csv(os.path.join(data_dir, f"{name}_true_pairs.csv"), dtype=str)
    true_pairs = {frozenset(p) for p in zip(truth.rec_id_1, truth.rec_id_2)}

    started = time.perf_counter()
    indexer = recordlinkage.Index()
    indexer.add(Block("given_name"))
    indexer.add(Block("surname"))
    indexer.add(Block("date_of_birth"))
    pairs = indexer.index(df)
    compare = recordlinkage.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85)
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85)
    compare.exact("date_of_birth", "date_of_birth")
    compare.exact("suburb", "suburb")
    compare.exact("state", "state")
    compare.exact("soc_sec_id", "soc_sec_id")
    compare.string("address_1", "address_1", threshold=0.85)
    features = compare.compute(pairs, df)
    matches = recordlinkage.ECMClassifier(binarize=None).fit_predict(features)
    seconds = time.perf_counter() - started

    predicted = {frozenset(p) for p in matches}
    correct = len(predicted & true_pairs)
    precision = correct / len(predicted) if predicted else 1.0
    recall = correct / len(true_pairs)
    f1 = 2 * precision * recall / (precision + recall) if correct else 0.0
    return {
        "file": name,
        "candidate_pairs": len(pairs),
        "seconds": seconds,
        "pairs_per_second": len(pairs) / seconds,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


if __name__ == "__main__":
    for name in sys.argv[2:]:
        print(json.dumps(run(sys.argv[1], name)), flush=True)
