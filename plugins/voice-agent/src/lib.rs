//! The voice agent: a caller talks to an LLM on a live call.
//!
//! For each call the switch connects to it (the dialplan's `agent`
//! action), a task of the agent's own runtime holds the conversation:
//!
//! 1. **Listening.** The switch streams the caller's audio (16 kHz) and
//!    speech start/stop from its voice-activity detector. From speech
//!    start (with the 500 ms before it) to speech stop the audio goes to
//!    the speech-to-text sidecar; speech stop ends the stream, and its
//!    final transcripts are the caller's turn.
//! 2. **Thinking.** The turn goes to an OpenAI-compatible chat-completions
//!    endpoint with the conversation so far and the tools the route
//!    allows, streamed.
//! 3. **Speaking.** The answer is cut into sentences as its tokens come;
//!    each goes to the text-to-speech sidecar as soon as it is whole, and
//!    its audio to the switch as it is synthesised (one play per answer).
//! 4. **Tools.** `hang_up` and `transfer` wait for the answer's audio to
//!    be heard; `send_dtmf` and `set_cdr_tags` act at once; a webhook's
//!    answer goes back to the LLM, which goes on.
//! 5. **Barge-in.** Caller speech while the agent talks (the switch has
//!    already cut its audio) cancels the answer; what was said so far
//!    stays in the conversation.
//!
//! Every turn is reported to the switch (`ReportTurn`: transcript,
//! answer, stage timings) for the event bus and the CDR, once its answer
//! has been heard to the end or spoken over (the switch's PlaybackDone
//! says which: a caller may cut in after the answer was all sent). A speech
//! service or the LLM failing plays the configured apology, then
//! transfers or hangs up, naming the failure.
//!
//! The agent runs as a sidecar (`sentiric-voice-agent`, `src/main.rs`),
//! as DESIGN.md puts LLM agents: out of the switch's process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sentiric_plugin_sdk::v1::{self, call_action::Action, call_input::Input};
use sentiric_plugin_sdk::{Agent, Conversation, Later, Plugin, PluginError};
use serde_json::{json, Value};

pub mod config;
pub mod llm;
pub mod scripted;
mod speech;

use config::{CallSettings, Config};
use llm::{Http, Llm, ToolCall};
use speech::Sidecar;

/// The audio kept from before the detector's speech start (which it
/// reports some 300 ms into the speech): 500 ms.
const PREROLL_FRAMES: usize = 25;
/// LLM rounds in one turn at most (each webhook answer is one more).
const MAX_ROUNDS: usize = 4;

/// The agent: what every call shares.
pub struct VoiceAgent {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for VoiceAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceAgent")
            .field("llm", &self.shared.llm)
            .finish_non_exhaustive()
    }
}

/// What the calls share.
struct Shared {
    config: Config,
    llm: Llm,
    http: Http,
    stt: Arc<Sidecar>,
    tts: Arc<Sidecar>,
    /// The apology, 16 kHz PCM bytes.
    apology: Option<Vec<u8>>,
}

impl Plugin for VoiceAgent {
    fn new(config: &str) -> Result<Self, PluginError> {
        let config = Config::parse(config).map_err(PluginError::new)?;
        let key = config.api_key().map_err(PluginError::new)?;
        let tls = config.speech_tls().map_err(PluginError::new)?;
        let apology = match &config.failure.apology_wav {
            Some(path) => Some(load_prompt(path).map_err(PluginError::new)?),
            None => None,
        };
        sentiric_plugin_sdk::sidecar::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("voice-agent")
            .enable_all()
            .build()
            .map_err(|e| PluginError::new(format!("runtime: {e}")))?;
        // The HTTP client's pool lives on the runtime.
        let http = {
            let _in = runtime.enter();
            llm::http()
        };
        let llm = Llm::new(&config.llm, key, http.clone()).map_err(PluginError::new)?;
        let stt = Arc::new(Sidecar::new(config.stt.clone(), tls.clone()));
        let tts = Arc::new(Sidecar::new(config.tts.clone(), tls));
        Ok(VoiceAgent {
            shared: Arc::new(Shared {
                config,
                llm,
                http,
                stt,
                tts,
                apology,
            }),
            runtime: Some(runtime),
        })
    }

    fn agent(&self) -> Option<&dyn Agent> {
        Some(self)
    }

    // `input` hands the input to the call's task and returns.
    fn may_block(&self) -> bool {
        false
    }
}

impl Drop for VoiceAgent {
    fn drop(&mut self) {
        // May be dropped on an async runtime's thread (a sidecar's):
        // no waiting for the tasks there.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Agent for VoiceAgent {
    fn start(
        &self,
        start: &v1::ConverseStart,
        later: Later,
    ) -> Result<Box<dyn Conversation>, PluginError> {
        let settings = CallSettings::new(&self.shared.config.defaults, &start.params);
        for t in &settings.tools {
            if !config::BUILT_IN_TOOLS.contains(&t.as_str())
                && !self.shared.config.webhooks.contains_key(t)
            {
                return Err(PluginError::new(format!("tools: {t}: no such tool")));
            }
        }
        let (call_id, trace_id) = start
            .call
            .as_ref()
            .map(|c| (c.call_id.clone(), c.trace_id.clone()))
            .unwrap_or_default();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let call = Call::new(Arc::clone(&self.shared), settings, later, call_id, trace_id);
        let rt = self.runtime.as_ref().expect("running until dropped");
        rt.spawn(call.run(rx));
        Ok(Box::new(Talking { tx }))
    }
}

/// A call's conversation as the switch sees it: inputs handed to the
/// call's task.
struct Talking {
    tx: tokio::sync::mpsc::UnboundedSender<Input>,
}

impl Conversation for Talking {
    fn input(&mut self, input: Input, _: &mut Vec<v1::CallAction>) -> Result<(), PluginError> {
        // A task that is over (the call failed and was ended) takes no
        // more: nothing to do with them.
        let _ = self.tx.send(input);
        Ok(())
    }
}

/// The prompt at `path` as 16 kHz PCM bytes.
fn load_prompt(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let wav =
        sentiric_media::wav::Wav::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut player = sentiric_media::wav::WavPlayer::new(&wav, 16_000)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut out, mut frame) = (Vec::new(), Vec::new());
    while player.next_frame(&mut frame) {
        out.extend(frame.iter().flat_map(|s| s.to_le_bytes()));
    }
    Ok(out)
}

/// Why a call gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    Stt,
    Tts,
    Llm,
}

impl Broken {
    fn name(self) -> &'static str {
        match self {
            Broken::Stt => "stt_failed",
            Broken::Tts => "tts_failed",
            Broken::Llm => "llm_failed",
        }
    }
}

/// How a call ends once the audio before it is heard.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    HangUp(String),
    Transfer(String),
}

/// What a turn has done so far (read when it is cancelled).
#[derive(Debug, Default)]
struct Progress {
    response: String,
    tools: Vec<String>,
    first_token_ms: u32,
    first_audio_ms: u32,
    /// Audio went to the switch.
    spoke: bool,
    /// Cut off (barge-in): its audio must not follow the switch's stop.
    cancelled: bool,
}

/// What a turn came to.
#[derive(Debug)]
struct Outcome {
    /// The messages it adds to the conversation (the answer, tool calls
    /// and their results).
    messages: Vec<Value>,
    end: Option<End>,
    broken: Option<Broken>,
}

/// A turn under way.
struct Turn {
    task: tokio::task::JoinHandle<Outcome>,
    progress: Arc<Mutex<Progress>>,
    transcript: String,
    transcript_ms: u32,
    play: String,
}

/// One call's conversation.
struct Call {
    shared: Arc<Shared>,
    settings: CallSettings,
    later: Later,
    /// The switch's Call-ID and trace id for the call, in every log line.
    call_id: String,
    trace_id: String,
    history: Vec<Value>,
    preroll: VecDeque<Vec<u8>>,
    /// The caller's stretches of speech being recognised, oldest first;
    /// only the newest may still take audio (the others' speech stopped,
    /// their final transcripts still to come).
    recognizing: VecDeque<speech::Recognizing>,
    /// The caller's words the recognitions have made final.
    heard: String,
    /// When the caller's speech stopped (the turn's clock).
    stopped: Option<Instant>,
    turn: Option<Turn>,
    /// Words of a turn cancelled before its answer was heard.
    unanswered: String,
    /// The play whose end ends the call.
    ending: Option<(String, End)>,
    /// A turn whose answer is still being heard: reported when its play
    /// is over (the switch says whether the caller spoke over it).
    unheard: Option<(String, v1::ReportTurn)>,
    /// Plays the switch said were over before their turn was (its last
    /// chunk goes out just before the turn ends): whether interrupted.
    played: Vec<(String, bool)>,
    plays: u32,
    over: bool,
}

impl Call {
    fn new(
        shared: Arc<Shared>,
        settings: CallSettings,
        later: Later,
        call_id: String,
        trace_id: String,
    ) -> Call {
        let history = vec![json!({"role": "system", "content": settings.system_prompt})];
        Call {
            shared,
            settings,
            later,
            call_id,
            trace_id,
            history,
            preroll: VecDeque::with_capacity(PREROLL_FRAMES),
            recognizing: VecDeque::new(),
            heard: String::new(),
            stopped: None,
            turn: None,
            unanswered: String::new(),
            ending: None,
            unheard: None,
            played: Vec::new(),
            plays: 0,
            over: false,
        }
    }

    async fn run(mut self, mut inputs: tokio::sync::mpsc::UnboundedReceiver<Input>) {
        if !self.settings.greeting.is_empty() {
            let greeting = self.settings.greeting.clone();
            self.begin_turn(String::new(), 0, Some(greeting));
        }
        loop {
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => self.input(input).await,
                    None => break,
                },
                heard = recv_heard(&mut self.recognizing) => self.heard(heard),
                outcome = join_turn(&mut self.turn) => self.turn_over(outcome),
            }
            if self.over {
                break;
            }
        }
        if let Some(t) = self.turn.take() {
            t.task.abort();
        }
        if let Some((_, report)) = self.unheard.take() {
            self.send_report(report);
        }
    }

    async fn input(&mut self, input: Input) {
        match input {
            Input::Audio(frame) => {
                if let Some(r) = self.listening() {
                    let audio = v1::Audio {
                        pcm: frame.pcm,
                        sample_rate: 16_000,
                        params: Default::default(),
                    };
                    // A recogniser far behind loses audio rather than
                    // holding the call up.
                    let _ = r.audio.try_send(audio);
                } else {
                    if self.preroll.len() == PREROLL_FRAMES {
                        self.preroll.pop_front();
                    }
                    self.preroll.push_back(frame.pcm);
                }
            }
            Input::SpeechStarted(_) => self.speech_started().await,
            Input::SpeechStopped(_) => {
                self.stopped = Some(Instant::now());
                // The audio is over: the recogniser's last transcripts
                // come, then its stream ends.
                if let Some(r) = self.recognizing.back_mut() {
                    let (closed, _) = tokio::sync::mpsc::channel(1);
                    drop(std::mem::replace(&mut r.audio, closed));
                }
            }
            Input::PlaybackDone(done) => {
                if self.turn.as_ref().is_some_and(|t| t.play == done.id) {
                    // Its turn is not over yet: it will look here.
                    self.played.push((done.id.clone(), done.interrupted));
                }
                if self
                    .unheard
                    .as_ref()
                    .is_some_and(|(play, _)| *play == done.id)
                {
                    let (_, mut report) = self.unheard.take().expect("checked");
                    report.interrupted = done.interrupted;
                    self.send_report(report);
                }
                if !done.interrupted {
                    if let Some((play, _)) = &self.ending {
                        if *play == done.id {
                            let (_, end) = self.ending.take().expect("checked");
                            self.finish(end);
                        }
                    }
                }
            }
            Input::Ended(_) => {
                if let Some((_, report)) = self.unheard.take() {
                    self.send_report(report);
                }
                self.over = true;
            }
            Input::Dtmf(_) | Input::Start(_) => {}
        }
    }

    /// The caller began to speak: a recognition with the audio just
    /// before; an answer being given is cancelled (barge-in).
    async fn speech_started(&mut self) {
        if let Some(t) = self.turn.take() {
            t.task.abort();
            // Under the lock the speaker sends under: none of this play's
            // audio comes after the stop (the task's abort lands later).
            let p = {
                let mut g = lock(&t.progress);
                let p = std::mem::take(&mut *g);
                g.cancelled = true;
                p
            };
            if p.spoke {
                self.later.send(Action::Stop(v1::StopPlayback {}));
                // What was said stays said.
                if !t.transcript.is_empty() {
                    self.history
                        .push(json!({"role": "user", "content": t.transcript}));
                }
                if !p.response.is_empty() {
                    self.history
                        .push(json!({"role": "assistant", "content": p.response}));
                }
            } else {
                // Not heard: the caller's words go with the next turn.
                self.unanswered = t.transcript.clone();
            }
            self.send_report(turn_report(&t, &p, true));
            tracing::info!(call_id = %self.call_id, trace_id = %self.trace_id, "voice agent: barge-in");
        }
        // Speaking over the answer that ends the call (not the apology of
        // a broken one): the call goes on.
        if self
            .ending
            .as_ref()
            .is_some_and(|(play, _)| play != "apology")
        {
            self.ending = None;
        }
        if self.listening().is_some() || self.ending.is_some() {
            return;
        }
        let mut params = HashMap::from([("language".to_string(), self.settings.language.clone())]);
        if !self.settings.stt_prompt.is_empty() {
            params.insert("prompt".into(), self.settings.stt_prompt.clone());
        }
        let first = v1::Audio {
            pcm: self.preroll.drain(..).flatten().collect(),
            sample_rate: 16_000,
            params,
        };
        // (Speech again before the last stretch's words are in: they and
        // these make one turn.)
        if self.recognizing.is_empty() {
            self.heard.clear();
        }
        match self.shared.stt.recognize(first).await {
            Ok(r) => self.recognizing.push_back(r),
            Err(e) => self.broke(Broken::Stt, &e),
        }
    }

    /// The recognition that takes the caller's audio now, if one does.
    fn listening(&self) -> Option<&speech::Recognizing> {
        self.recognizing.back().filter(|r| !r.audio.is_closed())
    }

    /// What the recogniser made of the oldest stretch of speech; `None`:
    /// it is over.
    fn heard(&mut self, heard: Option<Result<v1::Transcript, String>>) {
        match heard {
            Some(Ok(t)) => {
                if t.r#final && !t.text.trim().is_empty() {
                    if !self.heard.is_empty() {
                        self.heard.push(' ');
                    }
                    self.heard.push_str(t.text.trim());
                }
            }
            Some(Err(e)) => {
                self.recognizing.clear();
                self.broke(Broken::Stt, &e);
            }
            None => {
                self.recognizing.pop_front();
                if !self.recognizing.is_empty() {
                    // The caller spoke again: the turn waits for it.
                    return;
                }
                let mut words = std::mem::take(&mut self.unanswered);
                let heard = std::mem::take(&mut self.heard);
                if !heard.is_empty() {
                    if !words.is_empty() {
                        words.push(' ');
                    }
                    words.push_str(&heard);
                }
                if words.is_empty() || self.ending.is_some() {
                    return;
                }
                let transcript_ms = self.stopped.map_or(0, ms_since);
                self.begin_turn(words, transcript_ms, None);
            }
        }
    }

    /// Answers `transcript` (or says `said`, the greeting, as it is).
    fn begin_turn(&mut self, transcript: String, transcript_ms: u32, said: Option<String>) {
        self.plays += 1;
        let play = format!("answer-{}", self.plays);
        let progress = Arc::new(Mutex::new(Progress::default()));
        let mut messages = self.history.clone();
        if !transcript.is_empty() {
            messages.push(json!({"role": "user", "content": transcript}));
        }
        let job = Answer {
            shared: Arc::clone(&self.shared),
            settings: self.settings.clone(),
            later: self.later.clone(),
            play: play.clone(),
            progress: Arc::clone(&progress),
            clock: self.stopped.unwrap_or_else(Instant::now),
        };
        let task = tokio::spawn(job.run(messages, said));
        self.turn = Some(Turn {
            task,
            progress,
            transcript,
            transcript_ms,
            play,
        });
    }

    fn turn_over(&mut self, outcome: Result<Outcome, tokio::task::JoinError>) {
        let Some(t) = self.turn.take() else {
            return;
        };
        let p = std::mem::take(&mut *lock(&t.progress));
        let mut report = turn_report(&t, &p, false);
        // Its play already over (heard, or spoken over)?
        let played = self
            .played
            .iter()
            .position(|(id, _)| *id == t.play)
            .map(|i| self.played.swap_remove(i).1);
        self.played.clear();
        if p.spoke && played.is_none() {
            // Said once its audio has been heard, or spoken over.
            if let Some((_, earlier)) = self.unheard.replace((t.play.clone(), report)) {
                self.send_report(earlier);
            }
        } else {
            report.interrupted = played.unwrap_or(false);
            self.send_report(report);
        }
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(call_id = %self.call_id, trace_id = %self.trace_id, "voice agent: turn failed: {e}");
                self.broke(Broken::Llm, "the turn's task failed");
                return;
            }
        };
        if !t.transcript.is_empty() {
            self.history
                .push(json!({"role": "user", "content": t.transcript}));
        }
        self.history.extend(outcome.messages);
        if let Some(b) = outcome.broken {
            self.broke(b, "see above");
            return;
        }
        if let Some(end) = outcome.end {
            match played {
                // After the answer is heard.
                None if p.spoke => self.ending = Some((t.play, end)),
                // The caller spoke over it: the conversation goes on.
                Some(true) => {}
                _ => self.finish(end),
            }
        }
    }

    fn send_report(&self, r: v1::ReportTurn) {
        tracing::info!(
            call_id = %self.call_id, trace_id = %self.trace_id,
            transcript_ms = r.transcript_ms,
            first_token_ms = r.first_token_ms,
            first_audio_ms = r.first_audio_ms,
            interrupted = r.interrupted,
            tools = %r.tools.join(","),
            "voice agent: turn over ({} words heard, {} said)",
            r.transcript.split_whitespace().count(),
            r.response.split_whitespace().count(),
        );
        self.later.send(Action::Turn(r));
    }

    /// A service failed: the apology, then the transfer or hang-up.
    fn broke(&mut self, why: Broken, detail: &str) {
        if self.ending.is_some() || self.over {
            return;
        }
        tracing::warn!(call_id = %self.call_id, trace_id = %self.trace_id, "voice agent: {}: {detail}", why.name());
        if let Some(t) = self.turn.take() {
            t.task.abort();
        }
        self.recognizing.clear();
        self.later.send(Action::CdrTags(v1::SetCdrTags {
            tags: [("agent_failure".to_string(), why.name().to_string())].into(),
        }));
        let end = match &self.shared.config.failure.transfer_to {
            Some(uri) => End::Transfer(uri.clone()),
            None => End::HangUp(why.name().to_string()),
        };
        match &self.shared.apology {
            Some(pcm) => {
                self.later.send(Action::Stop(v1::StopPlayback {}));
                self.later.send(Action::Play(v1::PlayAudio {
                    id: "apology".into(),
                    pcm: pcm.clone(),
                    last: true,
                }));
                self.ending = Some(("apology".into(), end));
            }
            None => self.finish(end),
        }
    }

    fn finish(&mut self, end: End) {
        match end {
            End::HangUp(reason) => {
                self.later.send(Action::HangUp(v1::HangUp { reason }));
            }
            End::Transfer(uri) => {
                self.later.send(Action::Transfer(v1::Transfer { uri }));
            }
        }
        self.over = true;
    }
}

/// A turn's report.
fn turn_report(t: &Turn, p: &Progress, interrupted: bool) -> v1::ReportTurn {
    v1::ReportTurn {
        transcript: t.transcript.clone(),
        response: p.response.clone(),
        transcript_ms: t.transcript_ms,
        first_token_ms: p.first_token_ms,
        first_audio_ms: p.first_audio_ms,
        interrupted,
        tools: p.tools.clone(),
    }
}

/// The next of the recognition's results; pending forever without one.
/// What the oldest recognition hears next; pending forever without one.
async fn recv_heard(
    r: &mut VecDeque<speech::Recognizing>,
) -> Option<Result<v1::Transcript, String>> {
    match r.front_mut() {
        Some(r) => r.heard.recv().await,
        None => std::future::pending().await,
    }
}

/// The turn's outcome once it has one; pending forever without a turn.
async fn join_turn(t: &mut Option<Turn>) -> Result<Outcome, tokio::task::JoinError> {
    match t {
        Some(t) => (&mut t.task).await,
        None => std::future::pending().await,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ms_since(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_millis())
        .unwrap_or(u32::MAX)
        .max(1)
}

/// One answer: the LLM's rounds, its sentences spoken, its tools run.
#[derive(Clone)]
struct Answer {
    shared: Arc<Shared>,
    settings: CallSettings,
    later: Later,
    play: String,
    progress: Arc<Mutex<Progress>>,
    clock: Instant,
}

impl Answer {
    async fn run(self, mut messages: Vec<Value>, said: Option<String>) -> Outcome {
        let (sentences, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let speaking = AbortOnDrop(tokio::spawn(self.clone().speak(rx)));
        let mut added = Vec::new();
        let mut end = None;
        if let Some(said) = said {
            lock(&self.progress).response.push_str(&said);
            let _ = sentences.send(said.clone());
            added.push(json!({"role": "assistant", "content": said}));
        } else {
            let tools = self.tools();
            for _ in 0..MAX_ROUNDS {
                let mut split = Sentences::default();
                let mut text = String::new();
                let result = self
                    .shared
                    .llm
                    .complete(&messages, &tools, |llm::Delta::Text(t)| {
                        {
                            let mut p = lock(&self.progress);
                            if p.first_token_ms == 0 {
                                p.first_token_ms = ms_since(self.clock);
                            }
                            p.response.push_str(&t);
                        }
                        text.push_str(&t);
                        for s in split.push(&t) {
                            let _ = sentences.send(s);
                        }
                    })
                    .await;
                if let Some(rest) = split.rest() {
                    let _ = sentences.send(rest);
                }
                let calls = match result {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("voice agent: {e}");
                        return Outcome {
                            messages: added,
                            end: None,
                            broken: Some(Broken::Llm),
                        };
                    }
                };
                let mut message = json!({"role": "assistant", "content": text});
                if calls.is_empty() {
                    added.push(message);
                    break;
                }
                message["tool_calls"] = Value::Array(
                    calls
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function",
                                   "function": {"name": c.name, "arguments": c.arguments}})
                        })
                        .collect(),
                );
                added.push(message);
                messages.push(added.last().expect("pushed").clone());
                let mut again = false;
                for c in &calls {
                    lock(&self.progress).tools.push(c.name.clone());
                    let (result, asks_more) = self.tool(c, &mut end).await;
                    let answer = json!({"role": "tool", "tool_call_id": c.id, "content": result});
                    messages.push(answer.clone());
                    added.push(answer);
                    again |= asks_more;
                }
                if !again || end.is_some() {
                    break;
                }
            }
        }
        drop(sentences);
        let broken = match speaking.wait().await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => {
                tracing::warn!("voice agent: {e}");
                Some(Broken::Tts)
            }
            Err(_) => Some(Broken::Tts),
        };
        Outcome {
            messages: added,
            end,
            broken,
        }
    }

    /// The tools this call's LLM is offered, OpenAI's function format.
    fn tools(&self) -> Vec<Value> {
        let function = |name: &str, description: &str, parameters: Value| {
            json!({"type": "function", "function": {
                "name": name, "description": description, "parameters": parameters}})
        };
        let string = |d: &str| json!({"type": "string", "description": d});
        self.settings
            .tools
            .iter()
            .filter_map(|t| match t.as_str() {
                "hang_up" => Some(function(
                    "hang_up",
                    "End the call, after what you are saying now.",
                    json!({"type": "object", "properties": {"reason": string("why")}}),
                )),
                "transfer" => Some(function(
                    "transfer",
                    "Transfer the caller to another number or person (a SIP URI).",
                    json!({"type": "object", "properties": {"uri": string("a sip: URI")},
                           "required": ["uri"]}),
                )),
                "send_dtmf" => Some(function(
                    "send_dtmf",
                    "Send DTMF digits (0-9, *, #, A-D) on the call.",
                    json!({"type": "object", "properties": {"digits": string("the digits")},
                           "required": ["digits"]}),
                )),
                "set_cdr_tags" => Some(function(
                    "set_cdr_tags",
                    "Record facts about the call in its billing record.",
                    json!({"type": "object", "properties": {"tags": {"type": "object",
                           "additionalProperties": {"type": "string"}}}, "required": ["tags"]}),
                )),
                name => self.shared.config.webhooks.get(name).map(|w| {
                    let parameters = w
                        .parameters
                        .as_deref()
                        .and_then(|p| serde_json::from_str(p).ok())
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                    function(name, &w.description, parameters)
                }),
            })
            .collect()
    }

    /// Runs a tool call: its result for the LLM, and whether the LLM
    /// should go on with it (a webhook's answer).
    async fn tool(&self, call: &ToolCall, end: &mut Option<End>) -> (String, bool) {
        let args: Value = serde_json::from_str(if call.arguments.trim().is_empty() {
            "{}"
        } else {
            &call.arguments
        })
        .unwrap_or(Value::Null);
        let text = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let allowed = self.settings.tools.contains(&call.name);
        if !allowed {
            return (format!("error: no tool {}", call.name), false);
        }
        match call.name.as_str() {
            "hang_up" => {
                let reason = text("reason");
                *end = Some(End::HangUp(if reason.is_empty() {
                    "agent hung up".into()
                } else {
                    reason
                }));
                ("the call will end after your words".into(), false)
            }
            "transfer" => {
                let uri = text("uri");
                let allowed = (uri.starts_with("sip:") || uri.starts_with("sips:"))
                    && self
                        .settings
                        .transfer_allow
                        .iter()
                        .any(|p| uri.starts_with(p.as_str()));
                if !allowed {
                    return (format!("error: transfer to {uri:?} is not allowed"), false);
                }
                *end = Some(End::Transfer(uri));
                (
                    "the caller will be transferred after your words".into(),
                    false,
                )
            }
            "send_dtmf" => {
                self.later.send(Action::SendDtmf(v1::SendDtmf {
                    digits: text("digits"),
                }));
                ("sent".into(), false)
            }
            "set_cdr_tags" => {
                let tags = args
                    .get("tags")
                    .and_then(Value::as_object)
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| {
                                let v = v.as_str().map_or_else(|| v.to_string(), String::from);
                                (k.clone(), v)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if sentiric_plugin_sdk::check_tags(&tags).is_err() {
                    return (
                        "error: tags refused (names or values out of range)".into(),
                        false,
                    );
                }
                self.later.send(Action::CdrTags(v1::SetCdrTags { tags }));
                ("recorded".into(), false)
            }
            name => {
                let Some(w) = self.shared.config.webhooks.get(name) else {
                    return (format!("error: no tool {name}"), false);
                };
                let token = w.token_env.as_ref().and_then(|v| std::env::var(v).ok());
                let body = if args.is_null() {
                    "{}".to_string()
                } else {
                    args.to_string()
                };
                let answer = llm::post_json(
                    &self.shared.http,
                    &w.url,
                    token.as_deref(),
                    &body,
                    std::time::Duration::from_millis(w.timeout_ms),
                )
                .await;
                match answer {
                    Ok(text) => (text, true),
                    Err(e) => {
                        tracing::warn!("voice agent: webhook {name}: {e}");
                        (format!("error: {e}"), true)
                    }
                }
            }
        }
    }
}

/// A task's handle that cancels it when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn wait(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Answer {
    /// Speaks the answer's sentences in order, as one play.
    async fn speak(
        self,
        mut sentences: tokio::sync::mpsc::UnboundedReceiver<String>,
    ) -> Result<(), String> {
        let mut spoke = false;
        while let Some(sentence) = sentences.recv().await {
            let mut audio = self
                .shared
                .tts
                .synthesize(v1::Text {
                    text: sentence,
                    voice: self.settings.voice.clone(),
                    language: self.settings.language.clone(),
                    sample_rate: 16_000,
                })
                .await?;
            while let Some(chunk) = audio
                .message()
                .await
                .map_err(|s| format!("{}: {}", s.code(), s.message()))?
            {
                if chunk.sample_rate != 0 && chunk.sample_rate != 16_000 {
                    return Err(format!("TTS sent {} Hz, not 16000", chunk.sample_rate));
                }
                if chunk.pcm.is_empty() {
                    continue;
                }
                if !self.send_play(chunk.pcm, false) {
                    return Ok(());
                }
                spoke = true;
            }
        }
        if spoke {
            self.send_play(Vec::new(), true);
        }
        Ok(())
    }

    /// Sends a chunk of the play, unless the turn was cancelled (then
    /// false).
    fn send_play(&self, pcm: Vec<u8>, last: bool) -> bool {
        let mut p = lock(&self.progress);
        if p.cancelled {
            return false;
        }
        if !pcm.is_empty() && !p.spoke {
            p.spoke = true;
            p.first_audio_ms = ms_since(self.clock);
        }
        self.later.send(Action::Play(v1::PlayAudio {
            id: self.play.clone(),
            pcm,
            last,
        }));
        true
    }
}

/// An answer's text cut into sentences as its tokens come.
#[derive(Debug, Default)]
pub struct Sentences {
    pending: String,
}

impl Sentences {
    /// The sentences `text` completes: up to `.`, `!`, `?` or `;` (or a
    /// line break) followed by white space, at least a few characters
    /// long.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.pending.push_str(text);
        let mut out = Vec::new();
        loop {
            let bytes = self.pending.as_bytes();
            // The first end of a sentence with words enough before it
            // ("1." alone is not one).
            let cut = (0..bytes.len().saturating_sub(1)).find(|&i| {
                let end = (matches!(bytes[i], b'.' | b'!' | b'?' | b';')
                    && bytes[i + 1].is_ascii_whitespace())
                    || bytes[i] == b'\n';
                end && self.pending[..i]
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .count()
                    >= 2
            });
            let Some(at) = cut else { break };
            let sentence: String = self.pending.drain(..=at).collect();
            out.push(sentence.trim().to_string());
        }
        out
    }

    /// What is left at the end of the answer.
    pub fn rest(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (rest.chars().any(char::is_alphanumeric)).then(|| rest.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_cut_as_tokens_come() {
        let mut s = Sentences::default();
        let mut out = Vec::new();
        for t in [
            "1. Hel",
            "lo there. How",
            " are you?",
            " We open at 9",
            ".30 today",
        ] {
            out.extend(s.push(t));
        }
        assert_eq!(out, ["1. Hello there.", "How are you?"]);
        assert_eq!(s.rest().as_deref(), Some("We open at 9.30 today"));
        assert_eq!(s.rest(), None);
    }
}
