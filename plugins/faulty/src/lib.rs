//! A dialplan plugin that misbehaves on request, for the tests of the
//! switch's plugin host: what it does depends on the called user.
//!
//! | user | decision |
//! |---|---|
//! | `panic` | panics |
//! | `error` | returns an error |
//! | `stall` | sleeps 300 ms, then bridges |
//! | `bad-code` | rejects with 700 |
//! | `no-targets` | bridges to no target |
//! | `header-injection` | adds a header whose value has a line break |
//! | `decline…` (any user beginning so) | declines (the switch's rules decide), tagging the CDR `seen_by=faulty` |
//! | `declines-with-header` | declines, adding a header (which a decline may not) |
//! | anything else | bridges to the configuration's target (its whole text) |
//!
//! Its agent misbehaves: DTMF `1` panics, `2` fails, `3` transfers the
//! call to the configuration's target, `4` is answered 30 ms later, on its
//! own (the CDR tag `later=4`), any other digit is answered with a
//! hang-up naming it, the rest is ignored (a conversation whose `start`
//! params hold `fail` is refused at the start).

use std::time::Duration;

use sentiric_plugin_sdk::v1::{call_action::Action, call_input::Input};
use sentiric_plugin_sdk::{
    bridge, decline, reject, v1, Agent, Conversation, Dialplan, Later, Plugin, PluginError,
};

/// The plugin: its one target.
#[derive(Debug)]
pub struct Faulty {
    target: String,
}

impl Plugin for Faulty {
    fn new(config: &str) -> Result<Self, PluginError> {
        Ok(Faulty {
            target: config.trim().to_string(),
        })
    }

    fn dialplan(&self) -> Option<&dyn Dialplan> {
        Some(self)
    }

    fn agent(&self) -> Option<&dyn Agent> {
        Some(self)
    }
}

impl Agent for Faulty {
    fn start(
        &self,
        start: &v1::ConverseStart,
        later: Later,
    ) -> Result<Box<dyn Conversation>, PluginError> {
        if start.params.contains_key("fail") {
            return Err(PluginError::new("asked to fail at the start"));
        }
        Ok(Box::new(Misbehaving {
            target: self.target.clone(),
            later,
        }))
    }
}

/// One call's misbehaving conversation: where `3` sends the call, and
/// where `4`'s late answer goes.
struct Misbehaving {
    target: String,
    later: Later,
}

impl Conversation for Misbehaving {
    fn input(
        &mut self,
        input: Input,
        actions: &mut Vec<v1::CallAction>,
    ) -> Result<(), PluginError> {
        let reason = match input {
            Input::Dtmf(d) if d.digit == "1" => panic!("asked to panic"),
            Input::Dtmf(d) if d.digit == "2" => return Err(PluginError::new("asked to fail")),
            Input::Dtmf(d) if d.digit == "3" => {
                actions.push(v1::CallAction {
                    action: Some(Action::Transfer(v1::Transfer {
                        uri: self.target.clone(),
                    })),
                });
                return Ok(());
            }
            Input::Dtmf(d) if d.digit == "4" => {
                // Answered on its own, from another thread, 30 ms on.
                let later = self.later.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(30));
                    later.send(Action::CdrTags(v1::SetCdrTags {
                        tags: [("later".to_string(), "4".to_string())].into(),
                    }));
                });
                return Ok(());
            }
            Input::Dtmf(d) => format!("dtmf {}", d.digit),
            _ => return Ok(()),
        };
        actions.push(v1::CallAction {
            action: Some(Action::HangUp(v1::HangUp { reason })),
        });
        Ok(())
    }
}

impl Dialplan for Faulty {
    fn route(&self, request: &v1::RouteRequest) -> Result<v1::RouteDecision, PluginError> {
        match request.user.as_str() {
            "panic" => panic!("asked to panic"),
            "error" => Err(PluginError::new("asked to fail")),
            "bad-code" => Ok(reject(700, "")),
            "no-targets" => Ok(bridge(Vec::<String>::new())),
            "header-injection" => {
                let mut d = bridge([self.target.clone()]);
                d.add_headers
                    .insert("X-Evil".into(), "1\r\nVia: SIP/2.0/UDP 6.6.6.6".into());
                Ok(d)
            }
            // Every user beginning with "decline": not its call, the
            // switch's rules decide (its tag kept).
            "declines-with-header" => Ok(decline("").with_header("X-A", "1")),
            u if u.starts_with("decline") => Ok(decline("not mine")
                .with_rule("declines")
                .with_tag("seen_by", "faulty")),
            "stall" => {
                std::thread::sleep(Duration::from_millis(300));
                Ok(bridge([self.target.clone()]))
            }
            _ => Ok(bridge([self.target.clone()])),
        }
    }
}

sentiric_plugin_sdk::export_plugin!(Faulty);
