# AutoML: LightGBM and XGBoost wheels load the GNU OpenMP runtime, which a bare Debian may lack.
if ! ldconfig -p 2>/dev/null | grep -q 'libgomp\.so\.1'; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends libgomp1 >/dev/null
fi
python -c "import lightgbm, xgboost, optuna, shap" 
