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
//! | anything else | bridges to the configuration's target (its whole text) |

use std::time::Duration;

use sentiric_plugin_sdk::{bridge, reject, v1, Dialplan, Plugin, PluginError};

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
            "stall" => {
                std::thread::sleep(Duration::from_millis(300));
                Ok(bridge([self.target.clone()]))
            }
            _ => Ok(bridge([self.target.clone()])),
        }
    }
}

sentiric_plugin_sdk::export_plugin!(Faulty);
