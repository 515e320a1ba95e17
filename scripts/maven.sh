# Sourced by scripts/reference.sh and bench/kstreams.sh: a Maven project of this repository
# built into $FRESHET_CACHE/<kind>/<hash of its sources>/, outside the clone, keyed by its
# sources and the Kafka version so clones sharing one cache never overwrite each other's build.
# Needs scripts/lib.sh sourced first.

# maven_hash SRC: a short hash of the project's sources and the Kafka version.
maven_hash() {
  (
    cd "$1"
    echo "kafka=$KAFKA_VERSION"
    find . -type f \( -name '*.java' -o -name pom.xml -o -name '*.properties' \) -not -path './target/*' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-16
}

# maven_out SRC KIND: where the build of these sources goes.
maven_out() { echo "$FRESHET_CACHE/$2/$(maven_hash "$1")"; }

# maven_build SRC KIND BUILD_PROPERTY JAR_PREFIX WHAT REBUILD_HINT: builds the project unless
# built from the same sources, and prints its classpath file (one line: the jar and its
# dependencies, for `java -cp`). BUILD_PROPERTY is the pom's property naming the build dir.
maven_build() {
  local src=$1 kind=$2 prop=$3 jar_prefix=$4 what=$5 hint=$6 out log
  out=$(maven_out "$src" "$kind")
  log=$out.log
  if [ -f "$out/.complete" ]; then
    echo "$out/classpath.txt"
    return 0
  fi
  need_cmd "$JAVA" "install a Java 17+ runtime and JDK (Debian: apt-get install openjdk-17-jdk-headless)"
  need_cmd "$MVN" "install Maven 3.8+ (Debian: apt-get install maven)"
  mkdir -p "$FRESHET_CACHE/$kind" "$FRESHET_CACHE/reference"
  # One Maven at a time per cache: both projects fill one repository.
  exec 9>"$FRESHET_CACHE/reference/.lock"
  flock 9
  if [ ! -f "$out/.complete" ]; then
    log "building $what into $out (log: $log)"
    rm -rf "$out"
    local mvn_args=(-B -f "$src/pom.xml" -Dmaven.repo.local="$FRESHET_M2" -Dkafka.version="$KAFKA_VERSION"
      "-D$prop=$out/build" -DskipTests package)
    # Offline first: a warm repository needs no network; a cold one falls back to Maven Central.
    if ! "$MVN" -o "${mvn_args[@]}" >"$log" 2>&1; then
      log "offline build failed (a cold Maven repository?); retrying online"
      if ! "$MVN" "${mvn_args[@]}" >>"$log" 2>&1; then
        grep -E '\[ERROR\]' "$log" | head -n 30 >&2 || tail -n 30 "$log" >&2
        die "building $what failed (log: $log)" \
            "fix the error above; to check Maven Central: $MVN -B -Dmaven.repo.local=$FRESHET_M2 dependency:get -Dartifact=org.apache.kafka:kafka-streams:$KAFKA_VERSION"
      fi
    fi
    local jar
    jar=$(ls "$out"/build/"$jar_prefix"-*.jar 2>/dev/null | head -1)
    [ -n "$jar" ] && [ -f "$out/build/dependencies.txt" ] \
      || die "Maven finished but left no jar or dependency list in $out/build (log: $log)" "rm -rf $out and rerun: $hint"
    printf '%s:%s\n' "$jar" "$(cat "$out/build/dependencies.txt")" >"$out/classpath.txt"
    touch "$out/.complete"
    log "$what built: $out/classpath.txt"
  fi
  flock -u 9
  echo "$out/classpath.txt"
}

# maven_path SRC KIND WHAT HINT: the classpath file of the current sources (fails if not built).
maven_path() {
  local out
  out=$(maven_out "$1" "$2")
  [ -f "$out/.complete" ] || die "$3 is not built for these sources" "run: $4"
  echo "$out/classpath.txt"
}
