#!/usr/bin/env bash
# Builds the base image of the epserve container from the local JDK, with no registry and no Docker daemon:
#
#   deploy/image/build-base.sh [--jdk DIR] [--out DIR] [--add-modules LIST] [--no-jdeps] [--no-busybox]
#
# Writes DIR/rootfs (default deploy/image/target/rootfs) and DIR/epserve-base.tar, a `docker save`-format image
# (one layer) that Jib takes as its base (`-Depserve.image.base=tar://...`, the default of the `image` profile):
#
#   /opt/jre                        a jlink'd Java runtime (the modules below), PATH and JAVA_HOME point at it
#   /lib/x86_64-linux-gnu, /lib64   the glibc, libstdc++ and libgcc_s the runtime and the app's native libraries
#                                   (DJL tokenizers, netty epoll, JNA) link against, copied from this machine
#   /bin/busybox + applet links     a shell and the usual tools for `kubectl exec` (skipped with --no-busybox or
#                                   when no static busybox is installed: apt-get install busybox-static)
#   /etc/passwd, /etc/group         root and the user epserve (uid/gid 10001, home /tmp) the container runs as
#   /tmp                            mode 1777 (java.io.tmpdir; netty and DJL unpack native libraries there)
#
# Modules: the JVM flags of the parent pom (epserve.jvm.flags) add java.se and jdk.incubator.vector and open
# jdk.management; jdeps over the packaged cli (cli/target, when built; about a minute, --no-jdeps skips it) checks
# what the classes use (jdk.httpserver for the Prometheus endpoint, jdk.unsupported, jdk.jfr, jdk.net, ...) and adds
# anything missing; jdk.jcmd is there for `jcmd 1 Thread.print`.
#
# The glibc comes from the build machine, so the image runs wherever this machine's binaries would (x86_64 Linux,
# a kernel at least as new as the glibc needs). Needs bash, tar (GNU), sha256sum, ldd, unzip.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/deploy/image/target"
JDK="${JAVA_HOME-}"
BUSYBOX=1
JDEPS=1
EXTRA_MODULES=""
TAG="epserve-base:latest"
UID_GID=10001
# Always in: what epserve.jvm.flags names (--add-modules java.se,jdk.incubator.vector; --add-opens into
# jdk.management) plus jcmd for diagnostics. jdeps adds the rest.
MODULES="java.se,jdk.incubator.vector,jdk.unsupported,jdk.management,jdk.httpserver,jdk.jfr,jdk.net,jdk.naming.dns,jdk.jcmd"

while [ $# -gt 0 ]; do
  case "$1" in
    --jdk) JDK="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --add-modules) EXTRA_MODULES="$2"; shift 2 ;;
    --no-busybox) BUSYBOX=0; shift ;;
    --no-jdeps) JDEPS=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-base.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$JDK" ]; then
  for d in /usr/lib/jvm/temurin-25* /usr/lib/jvm/*25* /opt/java/*; do
    if [ -x "$d/bin/jlink" ]; then JDK=$d; break; fi
  done
fi
if [ -z "$JDK" ] || [ ! -x "$JDK/bin/jlink" ]; then
  echo "build-base.sh: no JDK with jlink found; give --jdk DIR or set JAVA_HOME to a JDK 25" >&2
  exit 1
fi
major=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$JDK/release")
if [ "${major:-0}" -lt 25 ]; then
  echo "build-base.sh: $JDK is Java ${major:-?}; epserve needs 25" >&2
  exit 1
fi

ROOTFS="$OUT/rootfs"
WORK="$OUT/base-work"
rm -rf "$ROOTFS" "$WORK"
mkdir -p "$ROOTFS" "$WORK"

# ---- modules: the fixed list plus what jdeps finds in the packaged cli
APP_LIB="$ROOT/cli/target/lib"
APP_JAR="$ROOT/cli/target/epserve-cli.jar"
if [ "$JDEPS" = 0 ]; then
  echo "jdeps: skipped (--no-jdeps); the fixed module list only"
elif [ -f "$APP_JAR" ] && [ -d "$APP_LIB" ]; then
  # -R from the cli jar follows its dependencies through the class path (one run; modular jars given as roots
  # would make jdeps look for their module dependencies).
  found=$("$JDK/bin/jdeps" --multi-release 25 --ignore-missing-deps --print-module-deps -R \
            --class-path "$APP_LIB/*" "$APP_JAR" | tail -n 1)
  if ! [[ $found =~ ^[a-z.,]+$ ]]; then
    echo "build-base.sh: jdeps did not print a module list: $found" >&2
    exit 1
  fi
  MODULES="$MODULES,$found"
  echo "jdeps: the app uses $found"
else
  echo "build-base.sh: $APP_JAR not built (./mvnw -DskipTests package); using the fixed module list only" >&2
fi
[ -n "$EXTRA_MODULES" ] && MODULES="$MODULES,$EXTRA_MODULES"
MODULES=$(tr ',' '\n' <<< "$MODULES" | sed '/^$/d' | sort -u | paste -sd, -)
echo "modules: $MODULES"

"$JDK/bin/jlink" --add-modules "$MODULES" --strip-debug --no-header-files --no-man-pages --compress=zip-6 \
  --output "$ROOTFS/opt/jre"
"$ROOTFS/opt/jre/bin/java" -version 2>&1 | sed 's/^/  /'

# ---- native libraries: every ELF of the runtime and the app's linux-x86_64 natives, then what they link
NATIVE="$WORK/native"
mkdir -p "$NATIVE"
if [ -d "$APP_LIB" ]; then
  for jar in "$APP_LIB"/*.jar; do
    unzip -Z1 "$jar" 2>/dev/null | grep -E '\.so$' | grep -E 'linux[-_]x86[-_]64|x86_64|amd64' \
      | while read -r entry; do unzip -qo "$jar" "$entry" -d "$NATIVE"; done || true
  done
fi
libs="$WORK/libs.txt"
: > "$libs"
while IFS= read -r f; do
  # ldd prints "name => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)"
  ldd "$f" 2>/dev/null | awk '/=> \// {print $3} /^[[:space:]]*\/[^ ]+ \(/ {print $1}' >> "$libs" || true
done < <(find "$ROOTFS/opt/jre" "$NATIVE" -type f \( -name '*.so' -o -path '*/bin/*' -o -name jspawnhelper \) \
           ! -name 'libawt_xawt.so' ! -name 'libjawt.so' ! -name 'libjsound.so' ! -name 'libsplashscreen.so')
# (skipped: the X11 and ALSA back ends of java.desktop, which a headless server never loads)
# DJL tokenizers (the router's tokenizer) needs libstdc++ and libgcc_s; keep them even without a built app.
for l in libstdc++.so.6 libgcc_s.so.1; do
  # awk reads to the end: exiting at the match killed ldconfig with SIGPIPE, and under pipefail the script stopped
  # without a word (1 run in 3 here; the container tests then skipped).
  p=$(ldconfig -p | awk -v n="$l" '$1 == n && /x86-64/ && !found {print $NF; found = 1}')
  [ -n "$p" ] && echo "$p" >> "$libs"
done
# Only system libraries: the runtime's own (resolved inside $ROOTFS/opt/jre) are there already.
grep -v "^$ROOTFS/" "$libs" | sort -u > "$libs.system" || true
mv "$libs.system" "$libs"
while read -r lib; do
  [ -e "$lib" ] || continue
  mkdir -p "$ROOTFS$(dirname "$lib")"
  cp -L "$lib" "$ROOTFS$lib"
  chmod 755 "$ROOTFS$lib"
done < "$libs"
echo "libraries: $(xargs -n1 basename < "$libs" | paste -sd' ' -)"

# ---- busybox
if [ "$BUSYBOX" = 1 ]; then
  bb=$(command -v busybox || true)
  if [ -n "$bb" ] && ! ldd "$bb" >/dev/null 2>&1; then   # ldd fails on a static binary
    mkdir -p "$ROOTFS/bin"
    cp -L "$bb" "$ROOTFS/bin/busybox"
    chmod 755 "$ROOTFS/bin/busybox"
    for applet in $("$bb" --list); do
      [ "$applet" = busybox ] || ln -sf busybox "$ROOTFS/bin/$applet"
    done
    echo "busybox: $("$bb" | head -n 1)"
  else
    echo "build-base.sh: no static busybox (apt-get install busybox-static); the image has no shell" >&2
  fi
fi

# ---- /etc, /tmp
mkdir -p "$ROOTFS/etc" "$ROOTFS/tmp"
chmod 1777 "$ROOTFS/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nepserve:x:%s:%s:epserve:/tmp:/bin/sh\n' "$UID_GID" "$UID_GID" > "$ROOTFS/etc/passwd"
printf 'root:x:0:\nepserve:x:%s:\n' "$UID_GID" > "$ROOTFS/etc/group"
printf 'hosts: files dns\n' > "$ROOTFS/etc/nsswitch.conf"
chmod -R u+w,go+rX "$ROOTFS"

# ---- the image: one reproducible layer, docker-save layout
LAYER="$WORK/layer.tar"
# Entries without a leading ./ (Jib refuses "./" in a tar base as a path outside its destination).
(cd "$ROOTFS" && tar --sort=name --mtime='@0' --numeric-owner --owner=0 --group=0 -cf "$LAYER" -- *)
diff_id=$(sha256sum "$LAYER" | cut -d' ' -f1)
IMG="$WORK/image"
mkdir -p "$IMG"
mv "$LAYER" "$IMG/$diff_id.tar"
cat > "$IMG/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",
 "config":{"Env":["PATH=/opt/jre/bin:/bin","JAVA_HOME=/opt/jre","LANG=C.UTF-8","HOME=/tmp"],
           "User":"$UID_GID:$UID_GID","WorkingDir":"/tmp"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},
 "history":[{"created":"1970-01-01T00:00:00Z","created_by":"deploy/image/build-base.sh (jlink $MODULES)"}]}
EOF
config_id=$(sha256sum "$IMG/config.json" | cut -d' ' -f1)
mv "$IMG/config.json" "$IMG/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s.tar"]}]\n' "$config_id" "$TAG" "$diff_id" \
  > "$IMG/manifest.json"
(cd "$IMG" && tar --sort=name --mtime='@0' --numeric-owner --owner=0 --group=0 -cf "$OUT/epserve-base.tar" -- *)
rm -rf "$WORK"

echo "rootfs: $ROOTFS ($(du -sh "$ROOTFS" | cut -f1))"
echo "base image: $OUT/epserve-base.tar ($(du -h "$OUT/epserve-base.tar" | cut -f1), $TAG)"
echo "next: ./mvnw -B -Pimage -pl cli -am -DskipTests package   # -> cli/target/jib-image.tar"
