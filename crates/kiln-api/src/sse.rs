//! A minimal Server-Sent Events decoder: bytes in, `(event, data)` out.
//!
//! Shared by the LLM provider clients (which read vendors' streams) and the
//! SDK (which reads Kiln's), so both parse the framing the same way. It
//! follows the SSE spec's line rules: LF or CRLF line ends, `:` comments,
//! multi-line `data:` joined with `\n`, an event dispatched on a blank line.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, empty when none was given.
    pub event: String,
    pub data: String,
    /// The `id:` field, when given.
    pub id: Option<String>,
}

/// Incremental decoder; feed it chunks as they arrive.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buffer: Vec<u8>,
    event: String,
    data: Vec<String>,
    id: Option<String>,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `chunk` and returns every event it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        events
    }

    /// Dispatches a final event the stream ended without a blank line for.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.buffer.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.buffer)).into_owned();
            if let Some(event) = self.line(line.trim_end_matches('\r')) {
                return Some(event);
            }
        }
        self.dispatch()
    }

    /// Bytes received but not yet ending a line.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => self.data.push(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if self.data.is_empty() {
            self.event.clear();
            return None;
        }
        let event = SseEvent {
            event: std::mem::take(&mut self.event),
            data: std::mem::take(&mut self.data).join("\n"),
            id: self.id.clone(),
        };
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_across_chunk_boundaries() {
        let mut d = SseDecoder::new();
        assert!(d.feed(b"event: content_block_delta\r\ndata: {\"a\"").is_empty());
        let events = d.feed(b":1}\r\n\r\n: ping\n\ndata: x\ndata: y\n\ndata: [DONE]");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, "content_block_delta");
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[1].event, "");
        assert_eq!(events[1].data, "x\ny");
        assert_eq!(d.finish().unwrap().data, "[DONE]");
        assert_eq!(d.finish(), None);
    }
}
