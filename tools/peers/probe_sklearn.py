"""The peer for ProbeCompare: scikit-learn's multinomial logistic regression (lbfgs) on the same
features, at the two readings of ML.NET's L2 (C = 1/λ and C = 1/(nλ)). Prints accuracy, agreement with
ML.NET's probabilities and training time for each.

    /usr/bin/python3 probe_sklearn.py WORK_FOLDER L2 CLASS1,CLASS2,...
"""
import sys
import time

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

work, l2, classes = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(",")


def load(name):
    rows = [line.rstrip("\n").split(",") for line in open(f"{work}/{name}")]
    return np.array([[float(v) for v in r[1:]] for r in rows]), np.array([r[0] for r in rows])


x_train, y_train = load("train.csv")
x_test, y_test = load("test.csv")
mlnet = np.loadtxt(f"{work}/mlnet_probabilities.csv", delimiter=",").reshape(len(y_test), -1)
n = len(y_train)
print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}")
for name, c in (("C=1/L2", 1 / l2), ("C=1/(n*L2)", 1 / (n * l2))):
    model = LogisticRegression(C=c, solver="lbfgs", max_iter=5000, tol=1e-8, multi_class="multinomial")
    start = time.perf_counter()
    model.fit(x_train, y_train)
    seconds = time.perf_counter() - start
    probabilities = model.predict_proba(x_test)[:, [list(model.classes_).index(k) for k in classes]]
    accuracy = (model.predict(x_test) == y_test).mean()
    gap = np.abs(probabilities - mlnet).max()
    print(f"scikit-learn {name:11} (C={c:.4g}): test top-1 {accuracy:.1%}, max |p - p_ML.NET| {gap:.4f}")
    print(f"time {name} {seconds:.4f}")
