//! The SSE streams of one downstream session, with bounded replay for resumption.
//!
//! Stream 0 is the standalone GET stream; every POSTed request gets its own stream. Event ids are
//! `{stream}-{seq}`, unique within the session and naming their stream, so a client resuming with
//! `Last-Event-ID` gets exactly the rest of that stream (spec: basic/transports, resumability).
//! A stream is buffered even while a client is attached, because the client may lose the
//! connection after we wrote an event but before it read it.

use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;

/// Stream id of the standalone GET stream.
pub const STANDALONE: u64 = 0;
/// Events kept per stream for replay, and queued on the standalone stream while no client has
/// opened it (the oldest are dropped first): what an upstream can make a session hold per stream.
const MAX_EVENTS: usize = 512;
/// Bytes kept per stream, likewise.
const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Finished request streams kept for late resumption.
const KEEP_FINISHED: usize = 32;
/// Events queued for a slow live client before it is detached (it can resume from the buffer).
pub const SINK_CAPACITY: usize = 256;

/// One event as handed to a live HTTP response.
#[derive(Debug, Clone)]
pub struct Event {
    /// The stream it belongs to.
    pub stream: u64,
    /// Its position in the stream, from 1.
    pub seq: u64,
    /// One JSON-RPC message.
    pub data: Bytes,
    /// This event carries the request's reply: the stream ends after it.
    pub last: bool,
    /// On a reply that refuses the call for a rate limit: how long until a call would be
    /// accepted. The session decides it where it knows (the typed error, or the upstream's
    /// error it classifies anyway), so the ingress sends 429 + `Retry-After` without reading
    /// the reply.
    pub retry_after: Option<Duration>,
}

impl Event {
    /// The SSE id, `{stream}-{seq}`: formatted only when an SSE frame is written, because most
    /// replies leave as a plain JSON body and never need it.
    pub fn id(&self) -> String {
        format!("{}-{}", self.stream, self.seq)
    }
}

struct Stream {
    events: VecDeque<(u64, Bytes, bool)>,
    bytes: usize,
    next_seq: u64,
    sink: Option<mpsc::Sender<Event>>,
    done: bool,
    /// The reply's [`Event::retry_after`], kept for replays of it.
    retry_after: Option<Duration>,
}

impl Stream {
    fn new() -> Stream {
        Stream { events: VecDeque::new(), bytes: 0, next_seq: 1, sink: None, done: false, retry_after: None }
    }
}

/// All streams of one session.
pub struct Streams {
    next_id: u64,
    /// Keyed by the session's own counter: foldhash, not SipHash (no caller picks the keys).
    map: foldhash::HashMap<u64, Stream>,
    finished: VecDeque<u64>,
}

impl Default for Streams {
    fn default() -> Self {
        let mut map = foldhash::HashMap::default();
        map.insert(STANDALONE, Stream::new());
        Streams { next_id: 1, map, finished: VecDeque::new() }
    }
}

/// What became of a pushed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A connected client took it.
    Live,
    /// No client was connected (it left, or fell too far behind): kept for resumption, or
    /// queued until a GET stream opens.
    Kept,
    /// The stream is gone (finished and evicted, or ended): nobody can ever read it.
    Missing,
}

/// What a resumption finds.
pub enum Resume {
    /// Events to replay; `live` continues with new ones unless the stream has finished.
    Replay { events: Vec<Event>, live: Option<mpsc::Receiver<Event>> },
    /// No such stream (never existed, or evicted).
    Unknown,
}

impl Streams {
    /// Opens a request stream with a live receiver.
    pub fn open(&mut self) -> (u64, mpsc::Receiver<Event>) {
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        let mut s = Stream::new();
        s.sink = Some(tx);
        self.map.insert(id, s);
        (id, rx)
    }

    /// Attaches a new GET connection to the standalone stream, replacing any previous one, and
    /// hands it what was queued while nobody listened.
    pub fn attach_standalone(&mut self) -> (Vec<Event>, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        let s = self.map.entry(STANDALONE).or_insert_with(Stream::new);
        // Messages queued while no GET stream was open are delivered now, once.
        let retry_after = s.retry_after;
        let queued: Vec<Event> =
            s.events.drain(..).map(|(seq, data, last)| event(STANDALONE, seq, data, last, retry_after)).collect();
        s.bytes = 0;
        s.sink = Some(tx);
        (queued, rx)
    }

    /// Whether a client is listening on the standalone stream.
    pub fn standalone_live(&self) -> bool {
        self.map.get(&STANDALONE).is_some_and(|s| s.sink.as_ref().is_some_and(|t| !t.is_closed()))
    }

    /// Appends a message related to a request (or, on the standalone stream, to none), and
    /// says whether a connected client took it.
    pub fn push(&mut self, stream: u64, data: Bytes) -> Delivery {
        self.append(stream, data, false, None)
    }

    /// Appends a request's reply, which ends its stream; `retry_after` marks a rate-limit
    /// refusal (see [`Event::retry_after`]). Says whether a connected client took it.
    pub fn push_reply(&mut self, stream: u64, data: Bytes, retry_after: Option<Duration>) -> Delivery {
        self.append(stream, data, true, retry_after)
    }

    fn append(&mut self, stream: u64, data: Bytes, last: bool, retry_after: Option<Duration>) -> Delivery {
        let Some(s) = self.map.get_mut(&stream) else {
            return Delivery::Missing;
        };
        if s.done {
            return Delivery::Missing;
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        if last {
            s.retry_after = retry_after;
        }
        let keep_live = match &s.sink {
            Some(tx) => tx.try_send(event(stream, seq, data.clone(), last, retry_after)).is_ok(),
            None => false,
        };
        if !keep_live {
            s.sink = None;
        }
        // The standalone stream only queues while nobody listens; request streams always buffer.
        if stream != STANDALONE || !keep_live {
            s.bytes += data.len();
            s.events.push_back((seq, data, last));
            while s.events.len() > MAX_EVENTS || s.bytes > MAX_BYTES {
                match s.events.pop_front() {
                    Some((_, d, _)) => s.bytes -= d.len(),
                    None => break,
                }
            }
        }
        if last {
            s.done = true;
            s.sink = None;
            self.finished.push_back(stream);
            while self.finished.len() > KEEP_FINISHED {
                if let Some(old) = self.finished.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
        if keep_live {
            Delivery::Live
        } else {
            Delivery::Kept
        }
    }

    /// Ends a request stream without a reply (the request was cancelled by the client).
    pub fn end(&mut self, stream: u64) {
        if stream != STANDALONE {
            self.map.remove(&stream);
        }
    }

    /// Resumes after `Last-Event-ID: {stream}-{seq}`.
    pub fn resume(&mut self, last_event_id: &str) -> Resume {
        let Some((stream, seq)) = parse_event_id(last_event_id) else {
            return Resume::Unknown;
        };
        if stream == STANDALONE {
            let (events, rx) = self.attach_standalone();
            return Resume::Replay { events, live: Some(rx) };
        }
        let Some(s) = self.map.get_mut(&stream) else {
            return Resume::Unknown;
        };
        let events = s
            .events
            .iter()
            .filter(|(n, ..)| *n > seq)
            .map(|(n, d, l)| event(stream, *n, d.clone(), *l, s.retry_after))
            .collect();
        let live = if s.done {
            None
        } else {
            let (tx, rx) = mpsc::channel(SINK_CAPACITY);
            s.sink = Some(tx);
            Some(rx)
        };
        Resume::Replay { events, live }
    }

    /// Streams a client is attached to right now (request streams in flight, the GET stream).
    pub fn live_count(&self) -> usize {
        self.map.values().filter(|s| s.sink.as_ref().is_some_and(|t| !t.is_closed())).count()
    }

    /// Whether any client is attached to any stream (an idle session has none).
    pub fn any_live(&self) -> bool {
        self.map.values().any(|s| s.sink.as_ref().is_some_and(|t| !t.is_closed()))
    }
}

/// An event; `retry_after` is its stream's reply's, so it marks only that last event.
fn event(stream: u64, seq: u64, data: Bytes, last: bool, retry_after: Option<Duration>) -> Event {
    Event { stream, seq, data, last, retry_after: retry_after.filter(|_| last) }
}

/// The priming event id of a stream: before its first event.
pub fn priming_id(stream: u64) -> String {
    format!("{stream}-0")
}

fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (s, n) = id.split_once('-')?;
    Some((s.parse().ok()?, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    #[test]
    fn request_stream_replays_after_disconnect() {
        let mut st = Streams::default();
        let (id, rx) = st.open();
        assert_eq!(st.push(id, b("n1")), Delivery::Live);
        drop(rx); // client went away: not a cancellation
        assert_eq!(st.push(id, b("n2")), Delivery::Kept);
        assert_eq!(st.push_reply(id, b("reply"), None), Delivery::Kept);
        assert_eq!(st.push_reply(id, b("late"), None), Delivery::Missing, "a finished stream takes nothing");
        let Resume::Replay { events, live } = st.resume(&format!("{id}-1")) else { panic!("unknown") };
        assert_eq!(events.iter().map(|e| e.data.clone()).collect::<Vec<_>>(), vec![b("n2"), b("reply")]);
        assert!(events[1].last && live.is_none());
        assert!(matches!(st.resume("99-0"), Resume::Unknown));
        assert!(matches!(st.resume("garbage"), Resume::Unknown));
    }

    #[test]
    fn a_rate_limit_refusal_is_marked_on_its_reply_only() {
        let mut st = Streams::default();
        let (id, mut rx) = st.open();
        st.push(id, b("note"));
        let wait = Some(Duration::from_millis(1500));
        st.push_reply(id, b("refusal"), wait);
        assert_eq!(rx.try_recv().unwrap().retry_after, None);
        assert_eq!(rx.try_recv().unwrap().retry_after, wait);
        let Resume::Replay { events, .. } = st.resume(&priming_id(id)) else { panic!("unknown") };
        assert_eq!(events.iter().map(|e| e.retry_after).collect::<Vec<_>>(), vec![None, wait]);
    }

    #[test]
    fn live_resume_gets_later_events() {
        let mut st = Streams::default();
        let (id, rx) = st.open();
        st.push(id, b("a"));
        drop(rx);
        let Resume::Replay { events, live } = st.resume(&priming_id(id)) else { panic!() };
        assert_eq!(events.len(), 1);
        let mut live = live.expect("still open");
        st.push_reply(id, b("z"), None);
        let e = live.try_recv().unwrap();
        assert_eq!((e.id(), e.last), (format!("{id}-2"), true));
    }

    #[test]
    fn standalone_queues_until_attached_then_streams() {
        let mut st = Streams::default();
        assert!(!st.standalone_live());
        st.push(STANDALONE, b("early"));
        let (queued, mut rx) = st.attach_standalone();
        assert_eq!(queued.len(), 1);
        assert!(st.standalone_live());
        st.push(STANDALONE, b("later"));
        assert_eq!(rx.try_recv().unwrap().data, b("later"));
    }

    #[test]
    fn the_queue_for_a_get_stream_nobody_opened_is_bounded() {
        let mut st = Streams::default();
        let big = Bytes::from(vec![b'x'; 64 * 1024]);
        for _ in 0..(2 * MAX_BYTES / big.len()) {
            assert_eq!(st.push(STANDALONE, big.clone()), Delivery::Kept);
        }
        let (queued, _rx) = st.attach_standalone();
        assert_eq!(queued.len() * big.len(), MAX_BYTES, "only the newest 8 MiB are kept");
        let mut st = Streams::default();
        for i in 0..(MAX_EVENTS + 10) {
            st.push(STANDALONE, b(&i.to_string()));
        }
        let (queued, _rx) = st.attach_standalone();
        assert_eq!(queued.len(), MAX_EVENTS);
        assert_eq!(queued[0].data, b("10"), "the oldest go first");
    }

    #[test]
    fn replay_buffer_is_bounded() {
        let mut st = Streams::default();
        let (id, rx) = st.open();
        drop(rx);
        for i in 0..(MAX_EVENTS + 10) {
            st.push(id, b(&i.to_string()));
        }
        let Resume::Replay { events, .. } = st.resume(&priming_id(id)) else { panic!() };
        assert_eq!(events.len(), MAX_EVENTS);
    }
}
