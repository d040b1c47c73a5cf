# Shared by scripts/ci_matrix.sh and scripts/ci_wheel_smoke.sh (sourced, not run).

# find_python 3.12: the path of a python3.12 (PATH first, then pyenv's versions), or fail.
find_python() {
  local version="$1" candidate
  for candidate in "$(command -v "python$version" 2>/dev/null || true)" \
    "$HOME"/.pyenv/versions/"$version".*/bin/python"$version" \
    /root/.pyenv/versions/"$version".*/bin/python"$version"; do
    # A pyenv shim exists for every version but runs only the selected ones: try it.
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c "" >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  echo "ci: no python$version on this machine" >&2
  return 1
}

# build_wheel DIR: build safemigrate's wheel from this checkout into DIR (once per DIR; SAFEMIGRATE_WHEEL_DIR,
# when set, is used instead, so CI's steps share one build); prints its path.
build_wheel() {
  local out="${SAFEMIGRATE_WHEEL_DIR:-$1}"
  if ! ls "$out"/safemigrate-*.whl >/dev/null 2>&1; then
    mkdir -p "$out"
    local venv="$out/.build-venv"
    "$(find_python 3.11)" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "build>=1.2,<2" >/dev/null
    "$venv/bin/python" -m build --wheel --outdir "$out" . >"$out/build.log" 2>&1 \
      || { cat "$out/build.log" >&2; return 1; }
  fi
  ls "$out"/safemigrate-*.whl | head -n1
}
