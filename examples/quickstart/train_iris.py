"""Train an SVM on iris (the Azure ML scikit-learn tutorial's script, unchanged but for the import)."""

import argparse
import os

import joblib
import numpy as np
from sklearn import datasets, svm
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split

from nbml import Run

parser = argparse.ArgumentParser()
parser.add_argument("--kernel", type=str, default="linear", help="Kernel type to be used in the algorithm")
parser.add_argument("--penalty", type=float, default=1.0, help="Penalty parameter of the error term")
args = parser.parse_args()

run = Run.get_context()
run.log("Kernel type", np.str_(args.kernel))
run.log("Penalty", np.float64(args.penalty))

X, y = datasets.load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
svm_model_linear = svm.SVC(kernel=args.kernel, C=args.penalty).fit(X_train, y_train)
svm_predictions = svm_model_linear.predict(X_test)

accuracy = svm_model_linear.score(X_test, y_test)
print("Accuracy of SVM classifier on test set: {:.2f}".format(accuracy))
run.log("Accuracy", np.float64(accuracy))
run.log_confusion_matrix("confusion", confusion_matrix(y_test, svm_predictions))

os.makedirs("outputs", exist_ok=True)
joblib.dump(svm_model_linear, "outputs/model.joblib")
