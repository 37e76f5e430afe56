//! The smallest possible agent: every frame of the caller's audio is
//! played straight back to them, as one play (`echo`) that never ends
//! until the call does. DTMF `#` hangs up, to show a second action.
//!
//! One source, shipped either way: the library the switch loads from its
//! plugin directory (`export_plugin!` below), or a sidecar
//! (`sentiric-echo-agent-sidecar`, `src/main.rs`).

use sentiric_plugin_sdk::v1::{self, call_action::Action, call_input::Input};
use sentiric_plugin_sdk::{Agent, Conversation, Plugin, PluginError};

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
    fn start(&self, _: &v1::ConverseStart) -> Result<Box<dyn Conversation>, PluginError> {
        Ok(Box::new(Echo))
    }
}

/// One call's echo.
struct Echo;

impl Conversation for Echo {
    fn input(
        &mut self,
        input: Input,
        actions: &mut Vec<v1::CallAction>,
    ) -> Result<(), PluginError> {
        let action = match input {
            Input::Audio(frame) => Action::Play(v1::PlayAudio {
                id: "echo".into(),
                pcm: frame.pcm,
                last: false,
            }),
            Input::Dtmf(d) if d.digit == "#" => Action::HangUp(v1::HangUp {
                reason: "caller pressed #".into(),
            }),
            _ => return Ok(()),
        };
        actions.push(v1::CallAction {
            action: Some(action),
        });
        Ok(())
    }
}

sentiric_plugin_sdk::export_plugin!(EchoAgent);
