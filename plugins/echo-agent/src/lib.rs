//! The smallest possible agent: every frame of the caller's audio is
//! played straight back to them, as one play (`echo`) that never ends
//! until the call does. To show the other actions, each DTMF digit is
//! sent back as a digit and the digits so far are set as the CDR tag
//! `echo_digits`; `#` hangs up.
//!
//! One source, shipped either way: the library the switch loads from its
//! plugin directory (`export_plugin!` below), or a sidecar
//! (`sentiric-echo-agent-sidecar`, `src/main.rs`).

use sentiric_plugin_sdk::v1::{self, call_action::Action, call_input::Input};
use sentiric_plugin_sdk::{Agent, Conversation, Later, Plugin, PluginError};

/// The agent: no configuration.
#[derive(Debug, Default)]
pub struct EchoAgent;

impl Plugin for EchoAgent {
    fn new(_config: &str) -> Result<Self, PluginError> {
        Ok(EchoAgent)
    }

    fn agent(&self) -> Option<&dyn Agent> {
        Some(self)
    }

    // Copies bytes, never waits.
    fn may_block(&self) -> bool {
        false
    }
}

impl Agent for EchoAgent {
    fn start(&self, _: &v1::ConverseStart, _: Later) -> Result<Box<dyn Conversation>, PluginError> {
        Ok(Box::new(Echo::default()))
    }
}

/// One call's echo: the digits heard so far.
#[derive(Default)]
struct Echo {
    digits: String,
}

impl Conversation for Echo {
    fn input(
        &mut self,
        input: Input,
        actions: &mut Vec<v1::CallAction>,
    ) -> Result<(), PluginError> {
        let mut act = |action| {
            actions.push(v1::CallAction {
                action: Some(action),
            })
        };
        match input {
            Input::Audio(frame) => act(Action::Play(v1::PlayAudio {
                id: "echo".into(),
                pcm: frame.pcm,
                last: false,
            })),
            Input::Dtmf(d) if d.digit == "#" => act(Action::HangUp(v1::HangUp {
                reason: "caller pressed #".into(),
            })),
            Input::Dtmf(d) => {
                self.digits.push_str(&d.digit);
                act(Action::SendDtmf(v1::SendDtmf { digits: d.digit }));
                act(Action::CdrTags(v1::SetCdrTags {
                    tags: [("echo_digits".to_string(), self.digits.clone())].into(),
                }));
            }
            _ => {}
        }
        Ok(())
    }
}

sentiric_plugin_sdk::export_plugin!(EchoAgent);
