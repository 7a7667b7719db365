# Spark target tests: pyspark comes with the test extra (its spark-submit lands beside the venv's python);
# Spark needs a Java runtime, 17 or newer for pyspark 4. On Debian bookworm that is openjdk-17-jre-headless.
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ] 2>/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
fi
java -version 2>&1 | head -1
test -x "$(dirname "$(command -v python)")/spark-submit"
