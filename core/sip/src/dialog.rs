//! Dialogs (RFC 3261 §12): creation on either side, route sets, CSeq
//! bookkeeping, target refresh, and building in-dialog requests, including
//! the ACK for a 2xx (§13.2.2.4).

use std::fmt::Write as _;

use crate::build::MessageBuilder;
use crate::header::HeaderName;
use crate::message::{Request, Response};
use crate::text::{split_commas, unfold};
use crate::typed::{Method, NameAddr};
use crate::uri::Uri;

/// Identifies a dialog: Call-ID and both tags (§12).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// This side's tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

impl DialogId {
    /// The id of the dialog a received request belongs to (local tag from
    /// To, remote tag from From); `None` when the request has no To tag.
    pub fn of_request(req: &Request<'_>) -> Option<DialogId> {
        Some(DialogId {
            call_id: req.call_id().to_string(),
            local_tag: req.to().tag()?.to_string(),
            remote_tag: req.from().tag().unwrap_or("").to_string(),
        })
    }

    /// The id of the dialog a received response belongs to (local tag from
    /// From, remote tag from To).
    pub fn of_response(resp: &Response<'_>) -> Option<DialogId> {
        Some(DialogId {
            call_id: resp.call_id().to_string(),
            local_tag: resp.from().tag()?.to_string(),
            remote_tag: resp.to().tag()?.to_string(),
        })
    }
}

/// Early (after a 1xx with a To tag) or confirmed (after a 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// Why a dialog could not be created or a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// The response that would create the dialog has no To tag.
    #[error("no To tag")]
    MissingTag,
    /// No usable Contact (the remote target).
    #[error("missing or malformed Contact")]
    BadContact,
    /// A Record-Route entry does not parse.
    #[error("malformed Record-Route")]
    BadRecordRoute,
    /// The response cannot create a dialog (not 1xx/2xx, or a 100).
    #[error("response does not create a dialog")]
    NotDialogCreating,
    /// A request arrived with a CSeq lower than the last one: answer 500
    /// (§12.2.2).
    #[error("CSeq {got} is lower than {last}")]
    CSeqOutOfOrder {
        /// Last remote CSeq seen.
        last: u32,
        /// CSeq of the request.
        got: u32,
    },
}

impl DialogError {
    /// The response code for a request refused by the dialog.
    pub fn status(&self) -> u16 {
        match self {
            DialogError::CSeqOutOfOrder { .. } => 500,
            _ => 400,
        }
    }
}

/// The state of one dialog (§12.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID and tags.
    pub id: DialogId,
    /// Early or confirmed.
    pub state: DialogState,
    /// CSeq of the last request this side sent; `None` until it sends one.
    pub local_seq: Option<u32>,
    /// CSeq of the last request received; `None` until one arrives.
    pub remote_seq: Option<u32>,
    /// This side's From/To value, with its tag.
    pub local_party: String,
    /// The peer's From/To value, with its tag.
    pub remote_party: String,
    /// Where in-dialog requests go: the peer's Contact URI.
    pub remote_target: String,
    /// Route set, in the order requests carry it.
    pub route_set: Vec<String>,
    /// `true` when created by a request over TLS to a `sips:` URI.
    pub secure: bool,
}

/// The remote target: the first Contact's URI.
fn contact_uri(contact: Result<Option<NameAddr<'_>>, &str>) -> Result<String, DialogError> {
    match contact {
        Ok(Some(na)) => Ok(na.uri_str().to_string()),
        _ => Err(DialogError::BadContact),
    }
}

fn record_route(headers: &crate::Headers<'_>) -> Result<Vec<String>, DialogError> {
    let mut out = Vec::new();
    for h in headers.all(HeaderName::RecordRoute) {
        for item in split_commas(h.value) {
            NameAddr::parse(item).map_err(|_| DialogError::BadRecordRoute)?;
            out.push(unfold(item).into_owned());
        }
    }
    Ok(out)
}

fn party_with_tag(value: &str, tag: &str) -> String {
    let v = unfold(value);
    match NameAddr::parse(&v) {
        Ok(na) if na.tag().is_some() => v.into_owned(),
        _ => format!("{v};tag={tag}"),
    }
}

impl Dialog {
    /// The UAC's dialog, from the request it sent and a response with a To
    /// tag: 101–199 makes it early, 2xx confirmed (§12.1.2).
    pub fn new_uac(request: &Request<'_>, response: &Response<'_>) -> Result<Dialog, DialogError> {
        if !(101..300).contains(&response.status) {
            return Err(DialogError::NotDialogCreating);
        }
        let remote_tag = response.to().tag().ok_or(DialogError::MissingTag)?;
        let mut route_set = record_route(&response.headers)?;
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: request.call_id().to_string(),
                local_tag: request.from().tag().unwrap_or("").to_string(),
                remote_tag: remote_tag.to_string(),
            },
            state: if response.status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_seq: Some(request.cseq().seq),
            remote_seq: None,
            local_party: unfold(request.headers.value(HeaderName::From).unwrap_or("")).into_owned(),
            remote_party: unfold(response.headers.value(HeaderName::To).unwrap_or("")).into_owned(),
            remote_target: contact_uri(response.contact())?,
            route_set,
            secure: request.uri_scheme().eq_ignore_ascii_case("sips"),
        })
    }

    /// The UAS's dialog, from the request it answers with `local_tag` in the
    /// To of its 1xx (`early`) or 2xx (§12.1.1).
    pub fn new_uas(
        request: &Request<'_>,
        local_tag: &str,
        early: bool,
    ) -> Result<Dialog, DialogError> {
        let to = request.headers.value(HeaderName::To).unwrap_or("");
        Ok(Dialog {
            id: DialogId {
                call_id: request.call_id().to_string(),
                local_tag: request.to().tag().unwrap_or(local_tag).to_string(),
                remote_tag: request.from().tag().unwrap_or("").to_string(),
            },
            state: if early {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_seq: None,
            remote_seq: Some(request.cseq().seq),
            local_party: party_with_tag(to, local_tag),
            remote_party: unfold(request.headers.value(HeaderName::From).unwrap_or(""))
                .into_owned(),
            remote_target: contact_uri(request.contact())?,
            route_set: record_route(&request.headers)?,
            secure: request.uri_scheme().eq_ignore_ascii_case("sips"),
        })
    }

    /// A response to a request this side sent in the dialog: a 2xx confirms
    /// an early dialog (recomputing its route set, §13.2.2.4) and, for a
    /// target-refresh request, a Contact replaces the remote target
    /// (§12.2.1.2).
    pub fn on_response(&mut self, response: &Response<'_>) -> Result<(), DialogError> {
        let method = response.cseq().method;
        if (101..300).contains(&response.status) && self.state == DialogState::Early {
            if response.status >= 200 {
                self.state = DialogState::Confirmed;
                let mut rs = record_route(&response.headers)?;
                rs.reverse();
                self.route_set = rs;
            }
            if response.headers.get(HeaderName::Contact).is_some() {
                self.remote_target = contact_uri(response.contact())?;
            }
        } else if (200..300).contains(&response.status)
            && is_target_refresh(method)
            && response.headers.get(HeaderName::Contact).is_some()
        {
            self.remote_target = contact_uri(response.contact())?;
        }
        Ok(())
    }

    /// A request received in the dialog (§12.2.2): checks CSeq order
    /// (except ACK and CANCEL, which reuse the INVITE's) and applies a
    /// target refresh.
    pub fn on_request(&mut self, request: &Request<'_>) -> Result<(), DialogError> {
        let seq = request.cseq().seq;
        if !matches!(request.method, Method::Ack | Method::Cancel) {
            if let Some(last) = self.remote_seq {
                if seq < last {
                    return Err(DialogError::CSeqOutOfOrder { last, got: seq });
                }
            }
            self.remote_seq = Some(seq);
        }
        if is_target_refresh(request.method) && request.headers.get(HeaderName::Contact).is_some() {
            self.remote_target = contact_uri(request.contact())?;
        }
        Ok(())
    }

    /// Builds a request in the dialog (§12.2.1.1): Request-URI and Route
    /// from the remote target and route set (loose or strict routing), To,
    /// From, Call-ID, a new CSeq, Max-Forwards, and `via` as the top Via.
    /// More headers and the body are added on the returned builder.
    pub fn create_request(&mut self, method: Method<'_>, via: &str) -> MessageBuilder {
        let seq = match method {
            Method::Ack | Method::Cancel => self.local_seq.unwrap_or(1),
            _ => {
                let s = self
                    .local_seq
                    .map_or(1, |s| s.wrapping_add(1) & 0x7fff_ffff);
                self.local_seq = Some(s);
                s
            }
        };
        self.build(method, seq, via)
    }

    /// Builds the ACK for a 2xx to the INVITE with CSeq `invite_seq`
    /// (§13.2.2.4): same routing as any in-dialog request, CSeq number of
    /// the INVITE, and a Via of its own (a new branch).
    pub fn create_ack(&self, invite_seq: u32, via: &str) -> MessageBuilder {
        self.build(Method::Ack, invite_seq, via)
    }

    fn build(&self, method: Method<'_>, seq: u32, via: &str) -> MessageBuilder {
        let first_loose = self
            .route_set
            .first()
            .and_then(|r| NameAddr::parse(r).ok())
            .is_none_or(|na| {
                na.uri()
                    .ok()
                    .is_none_or(|u| u.as_sip().is_none_or(|s| s.is_loose_route()))
            });
        let (uri, routes): (String, Vec<&str>) = if self.route_set.is_empty() || first_loose {
            (
                self.remote_target.clone(),
                self.route_set.iter().map(String::as_str).collect(),
            )
        } else {
            // Strict routing: the first route becomes the Request-URI and
            // the remote target goes last in Route.
            let first = NameAddr::parse(&self.route_set[0])
                .map(|na| na.uri_str().to_string())
                .unwrap_or_default();
            (
                first,
                self.route_set[1..].iter().map(String::as_str).collect(),
            )
        };
        let mut b = MessageBuilder::request(method, &uri)
            .header(HeaderName::Via, via)
            .header(HeaderName::MaxForwards, "70")
            .header(HeaderName::From, &self.local_party)
            .header(HeaderName::To, &self.remote_party)
            .header(HeaderName::CallId, &self.id.call_id);
        let mut cseq = String::with_capacity(20);
        let _ = write!(cseq, "{seq} {method}");
        b.push_header("CSeq", &cseq);
        for r in routes {
            b.push_header("Route", r);
        }
        if !self.route_set.is_empty() && !first_loose {
            b.push_header("Route", &format!("<{}>", self.remote_target));
        }
        b
    }

    /// The remote target, parsed.
    pub fn remote_target_uri(&self) -> Option<Uri<'_>> {
        Uri::parse(&self.remote_target).ok()
    }
}

/// Methods whose requests refresh the remote target (RFC 3261 §12.2,
/// RFC 3311 for UPDATE, RFC 6665 for SUBSCRIBE/NOTIFY).
fn is_target_refresh(m: Method<'_>) -> bool {
    matches!(
        m,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::response_to;

    const INVITE: &[u8] = b"INVITE sip:bob@127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: Alice <sip:alice@127.0.0.1>;tag=a\r\nTo: Bob <sip:bob@127.0.0.2>\r\nCall-ID: d1\r\nCSeq: 10 INVITE\r\nContact: <sip:alice@127.0.0.1:5070>\r\nRecord-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn both_sides_agree() {
        let req = Request::parse(INVITE).unwrap();
        let mut uas = Dialog::new_uas(&req, "b", false).unwrap();
        let resp = response_to(&req, 200, "OK", Some("b"));
        let mut resp = resp;
        resp.push_header(
            "Record-Route",
            "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
        );
        resp.push_header("Contact", "<sip:bob@127.0.0.2:5080>");
        let resp_bytes = resp.finish();
        let resp = Response::parse(&resp_bytes).unwrap();
        let mut uac = Dialog::new_uac(&req, &resp).unwrap();
        assert_eq!(uac.id.local_tag, uas.id.remote_tag);
        assert_eq!(uac.id.remote_tag, uas.id.local_tag);
        assert_eq!(uac.remote_target, "sip:bob@127.0.0.2:5080");
        assert_eq!(uas.remote_target, "sip:alice@127.0.0.1:5070");
        // The UAC reverses the Record-Route; the UAS keeps its order.
        assert_eq!(
            uac.route_set,
            vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(
            uas.route_set,
            vec!["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
        );

        let ack = uac
            .create_ack(10, "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK2")
            .finish();
        let ack = Request::parse(&ack).unwrap();
        assert_eq!(ack.cseq().seq, 10);
        assert_eq!(ack.uri_str(), "sip:bob@127.0.0.2:5080");
        assert_eq!(
            ack.headers.items(HeaderName::Route).next(),
            Some("<sip:p1.example.com;lr>")
        );

        let bye = uac
            .create_request(Method::Bye, "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK3")
            .finish();
        let bye = Request::parse(&bye).unwrap();
        assert_eq!(bye.cseq().seq, 11);
        assert_eq!(DialogId::of_request(&bye).unwrap(), uas.id);
        uas.on_request(&bye).unwrap();
        assert_eq!(uas.remote_seq, Some(11));
        // An older CSeq is refused with 500.
        let old = String::from_utf8(bye.raw.to_vec())
            .unwrap()
            .replace("11 BYE", "5 BYE");
        let old = Request::parse(old.as_bytes()).unwrap();
        assert_eq!(uas.on_request(&old).unwrap_err().status(), 500);
    }

    #[test]
    fn strict_route_puts_target_last() {
        let req = Request::parse(INVITE).unwrap();
        let mut d = Dialog::new_uas(&req, "b", false).unwrap();
        d.route_set = vec![
            "<sip:strict.example.com>".into(),
            "<sip:p1.example.com;lr>".into(),
        ];
        let bye = d
            .create_request(Method::Bye, "SIP/2.0/UDP h;branch=z9hG4bK9")
            .finish();
        let bye = Request::parse(&bye).unwrap();
        assert_eq!(bye.uri_str(), "sip:strict.example.com");
        let routes: Vec<_> = bye.headers.items(HeaderName::Route).collect();
        assert_eq!(
            routes,
            vec!["<sip:p1.example.com;lr>", "<sip:alice@127.0.0.1:5070>"]
        );
        assert_eq!(bye.cseq().seq, 1, "first request of the UAS side");
    }

    #[test]
    fn early_dialog_confirms_and_target_refreshes() {
        let req = Request::parse(INVITE).unwrap();
        let mut ring = response_to(&req, 180, "Ringing", Some("b"));
        ring.push_header("Contact", "<sip:bob@10.0.0.1>");
        let ring = ring.finish();
        let ring = Response::parse(&ring).unwrap();
        let mut d = Dialog::new_uac(&req, &ring).unwrap();
        assert_eq!(d.state, DialogState::Early);
        let mut ok = response_to(&req, 200, "OK", Some("b"));
        ok.push_header("Contact", "<sip:bob@127.0.0.2:5080>");
        let ok = ok.finish();
        d.on_response(&Response::parse(&ok).unwrap()).unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.remote_target, "sip:bob@127.0.0.2:5080");
        assert!(d.route_set.is_empty());
        // A 100 never creates a dialog; a response without a tag cannot.
        let trying = response_to(&req, 100, "Trying", None).finish();
        assert_eq!(
            Dialog::new_uac(&req, &Response::parse(&trying).unwrap()),
            Err(DialogError::NotDialogCreating)
        );
    }
}
