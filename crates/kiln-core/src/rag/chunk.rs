//! Splits a document's Markdown into the chunks that are embedded and indexed
//! for search.
//!
//! Why it works this way:
//! * Chunks follow the author's structure. ATX headings open sections, and a
//!   chunk packs whole paragraphs and whole code blocks of one section, so a
//!   search hit is a coherent passage rather than a window cut at an arbitrary
//!   offset. Only a block longer than a chunk is split: at sentences, then at
//!   words, then (a single overlong word) at characters.
//! * A chunk's first line is its heading trail (`Account > Passwords`). A
//!   passage such as "Click *Reset* and wait for the email." means little on
//!   its own; the trail gives the embedder and BM25 the section's context, and
//!   its words match queries that name the section.
//! * Sizes are counted in characters, so chunking needs no tokenizer and is the
//!   same for every embedding model. The default of 1,200 characters is roughly
//!   250–300 tokens of English, which fits the input window of small embedders
//!   (all-MiniLM-L6-v2 reads 256 word pieces, bge-small 512) instead of being
//!   cut off silently, and a short passage ranks more sharply. CONTRACT
//!   §4.2.15 suggests 800–1,000 tokens, which suits large embedders; the size
//!   is an option.
//! * Consecutive chunks of one section overlap by about 15 % (180 characters),
//!   as §4.2.15 suggests, so a thought cut at a chunk boundary is whole in one
//!   of the two. The overlap starts at a word, and it never crosses a heading:
//!   a new section starts fresh.
//! * One pass over the text with no regular expressions or backtracking, so
//!   time is linear in the input.
//!
//! Every chunk body is a trimmed slice of the (line-ending normalised) input,
//! so nothing is rewritten: what search returns is what the author wrote.

use std::borrow::Cow;

/// How big chunks are.
#[derive(Debug, Clone, Copy)]
pub struct ChunkOptions {
    /// Upper bound of a chunk's text, in characters (default 1_200). The
    /// heading-trail line counts towards it; see [`chunk_markdown`] for the
    /// exact bound when the trail is long. Zero is treated as one.
    pub max_chars: usize,
    /// Characters repeated from the end of the previous chunk of the same
    /// section (default 180 ≈ 15 %). At most half of the room for the body is
    /// used, so a chunk always brings at least as much new text as it repeats.
    pub overlap_chars: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_chars: 1_200,
            overlap_chars: 180,
        }
    }
}

/// One piece of a document, as it is embedded and indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct TextChunk {
    /// The text that is indexed and returned by search: the heading trail of
    /// its section (e.g. "Account > Passwords") on the first line when there
    /// is one, then the body.
    pub content: String,
    /// The section's headings from the top, e.g. ["Account", "Passwords"]
    /// (without the # marks).
    pub headings: Vec<String>,
    /// 0-based order within the document.
    pub index: usize,
}

/// Splits `text` (Markdown, or plain text whose paragraphs are separated by
/// blank lines) into chunks in document order.
///
/// Sections start at ATX headings (`#` to `######` then a space or tab, at
/// most three spaces of indentation) outside fenced code blocks. Each
/// non-empty section is packed greedily into chunks of whole paragraphs and
/// code blocks. A section without a body produces no chunk: a heading
/// followed directly by a sub-heading only contributes to the trail of the
/// sections below it, and one followed by a sibling or by the end of the
/// document is not indexed at all. Setext headings (underlined with `===`)
/// are plain text here.
///
/// **Size guarantee.** Let `m = max(max_chars, 1)` and `t` be the number of
/// characters of a chunk's trail (`headings` joined with `" > "`). A chunk
/// without headings has `content.chars().count() <= m`. A chunk with headings
/// is the trail, a newline and a body of at most
/// `max(m - (t + 1), m / 2, 1)` characters (saturating subtraction, integer
/// division), so
/// `content.chars().count() <= max(m, t + 1 + max(m / 2, 1))`: that is at
/// most `m` whenever the trail line takes no more than half of `m` (rounded
/// up), and never more than `m + t + 1`.
pub fn chunk_markdown(text: &str, options: ChunkOptions) -> Vec<TextChunk> {
    let text = normalise_line_endings(text);
    if text.trim().is_empty() {
        return Vec::new();
    }
    let mut chunker = Chunker::new(&text, options);
    chunker.run();
    chunker.chunks
}

fn normalise_line_endings(text: &str) -> Cow<'_, str> {
    if text.contains('\r') {
        // A lone `\r` (classic Mac OS) ends a line too.
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

/// The most characters of body that fit next to a trail line of
/// `trail_cost` characters (the trail and its newline, 0 without a trail).
/// A very long trail still leaves half of `max_chars` to the body.
fn body_budget(max_chars: usize, trail_cost: usize) -> usize {
    max_chars.saturating_sub(trail_cost).max(max_chars / 2).max(1)
}

/// A byte range of the text and the number of characters in it.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    chars: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    Paragraph,
    Code,
}

/// An open code fence: its character (`` ` `` or `~`) and length.
#[derive(Debug, Clone, Copy)]
struct Fence {
    marker: u8,
    len: usize,
    start: usize,
}

struct Chunker<'a> {
    text: &'a str,
    max_chars: usize,
    overlap_chars: usize,
    chunks: Vec<TextChunk>,
    /// Open headings as (level, title), outermost first.
    stack: Vec<(usize, String)>,
    headings: Vec<String>,
    trail: String,
    /// Room for the body of a chunk of the current section.
    budget: usize,
    /// Most characters an overlap may take in the current section.
    overlap_max: usize,
    /// The chunk being filled, as a span of the text.
    current: Option<Span>,
    /// The paragraph being read, as a byte range.
    paragraph: Option<(usize, usize)>,
    fence: Option<Fence>,
}

impl<'a> Chunker<'a> {
    fn new(text: &'a str, options: ChunkOptions) -> Self {
        let max_chars = options.max_chars.max(1);
        let mut chunker = Chunker {
            text,
            max_chars,
            overlap_chars: options.overlap_chars,
            chunks: Vec::new(),
            stack: Vec::new(),
            headings: Vec::new(),
            trail: String::new(),
            budget: 0,
            overlap_max: 0,
            current: None,
            paragraph: None,
            fence: None,
        };
        chunker.set_budget(0);
        chunker
    }

    fn set_budget(&mut self, trail_cost: usize) {
        self.budget = body_budget(self.max_chars, trail_cost);
        self.overlap_max = self.overlap_chars.min(self.budget / 2);
    }

    fn run(&mut self) {
        let text = self.text;
        let mut line_start = 0;
        for line in text.split_inclusive('\n') {
            let line_text = line.strip_suffix('\n').unwrap_or(line);
            let line_end = line_start + line_text.len();
            if let Some(fence) = self.fence {
                if closes_fence(line_text, fence) {
                    self.fence = None;
                    self.push_block(fence.start, line_end, Block::Code);
                }
            } else if let Some((level, title)) = parse_heading(line_text) {
                self.end_paragraph();
                self.start_section(level, title);
            } else if let Some((marker, len)) = parse_fence(line_text) {
                self.end_paragraph();
                self.fence = Some(Fence {
                    marker,
                    len,
                    start: line_start,
                });
            } else if line_text.trim().is_empty() {
                self.end_paragraph();
            } else {
                let start = self.paragraph.map_or(line_start, |(start, _)| start);
                self.paragraph = Some((start, line_end));
            }
            line_start += line.len();
        }
        // An unclosed fence runs to the end of the document, as in CommonMark.
        if let Some(fence) = self.fence.take() {
            self.push_block(fence.start, text.len(), Block::Code);
        }
        self.end_paragraph();
        self.end_section();
    }

    fn end_paragraph(&mut self) {
        if let Some((start, end)) = self.paragraph.take() {
            self.push_block(start, end, Block::Paragraph);
        }
    }

    fn start_section(&mut self, level: usize, title: &str) {
        self.end_section();
        while self.stack.last().is_some_and(|(open, _)| *open >= level) {
            self.stack.pop();
        }
        self.stack.push((level, title.to_owned()));
        self.headings = self
            .stack
            .iter()
            .filter(|(_, title)| !title.is_empty())
            .map(|(_, title)| title.clone())
            .collect();
        self.trail = self.headings.join(" > ");
        let trail_cost = if self.trail.is_empty() {
            0
        } else {
            self.trail.chars().count() + 1
        };
        self.set_budget(trail_cost);
    }

    fn end_section(&mut self) {
        if let Some(span) = self.current.take() {
            self.emit(span);
        }
    }

    /// Adds a paragraph or code block: whole when it fits, else in pieces.
    fn push_block(&mut self, start: usize, end: usize, block: Block) {
        let Some(span) = trimmed_span(self.text, start, end) else {
            return;
        };
        if span.chars <= self.budget {
            self.push_unit(span);
            return;
        }
        match block {
            Block::Paragraph => self.push_sentences(span.start, span.end),
            Block::Code => {
                let mut line_start = span.start;
                for line in self.text[span.start..span.end].split('\n') {
                    self.push_words(line_start, line_start + line.len());
                    line_start += line.len() + 1;
                }
            }
        }
    }

    /// Splits an overlong paragraph after `.`, `?` or `!` followed by
    /// whitespace, after the full-width `。`, `？` and `！` (Japanese and
    /// Chinese put no space after them), and at newlines.
    fn push_sentences(&mut self, start: usize, end: usize) {
        let bytes = &self.text.as_bytes()[start..end];
        let mut sentence_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let sentence_end = match bytes[i] {
                b'\n' => Some(i + 1),
                b'.' | b'?' | b'!' if bytes.get(i + 1).is_some_and(u8::is_ascii_whitespace) => Some(i + 1),
                // The lead bytes of `。` (E3 80 82), `！` (EF BC 81) and `？` (EF BC 9F).
                0xE3 | 0xEF => {
                    let rest = &self.text[start + i..end];
                    rest.starts_with(['。', '！', '？']).then_some(i + 3)
                }
                _ => None,
            };
            match sentence_end {
                // Each boundary is past `i`, so the loop always advances; the
                // trailing newline or space is trimmed off the sentence.
                Some(sentence_end) => {
                    self.push_words(start + sentence_start, start + sentence_end);
                    sentence_start = sentence_end;
                    i = sentence_end;
                }
                None => i += 1,
            }
        }
        self.push_words(start + sentence_start, end);
    }

    /// Adds a sentence or a line of code whole when it fits, else word by
    /// word, and an overlong word in pieces of `budget` characters.
    fn push_words(&mut self, start: usize, end: usize) {
        let Some(span) = trimmed_span(self.text, start, end) else {
            return;
        };
        if span.chars <= self.budget {
            self.push_unit(span);
            return;
        }
        let text = self.text;
        let mut piece: Option<Span> = None;
        for (i, c) in text[span.start..span.end].char_indices() {
            let at = span.start + i;
            if c.is_whitespace() {
                if let Some(word) = piece.take() {
                    self.push_unit(word);
                }
                continue;
            }
            match &mut piece {
                Some(open) if open.chars < self.budget => {
                    open.end = at + c.len_utf8();
                    open.chars += 1;
                }
                _ => {
                    let next = Span {
                        start: at,
                        end: at + c.len_utf8(),
                        chars: 1,
                    };
                    if let Some(full) = piece.replace(next) {
                        self.push_unit(full);
                    }
                }
            }
        }
        if let Some(word) = piece {
            self.push_unit(word);
        }
    }

    /// Adds a piece of at most `budget` characters to the current chunk, or
    /// starts the next chunk of the section with it.
    fn push_unit(&mut self, unit: Span) {
        debug_assert!(unit.chars <= self.budget);
        let Some(current) = self.current.as_mut() else {
            self.current = Some(unit);
            return;
        };
        // Only whitespace lies between two pieces of one section.
        let gap = self.text[current.end..unit.start].chars().count();
        if current.chars + gap + unit.chars <= self.budget {
            current.end = unit.end;
            current.chars += gap + unit.chars;
            return;
        }
        let previous = *current;
        self.emit(previous);
        let room = self.budget.saturating_sub(gap + unit.chars).min(self.overlap_max);
        self.current = Some(match self.overlap(previous, room) {
            Some(overlap) => Span {
                start: overlap.start,
                end: unit.end,
                chars: overlap.chars + gap + unit.chars,
            },
            None => unit,
        });
    }

    /// The longest tail of `previous` of at most `room` characters that
    /// starts at a word: after whitespace or a full-width sentence end.
    fn overlap(&self, previous: Span, room: usize) -> Option<Span> {
        let body = &self.text[previous.start..previous.end];
        let mut best = None;
        // Characters from just after the current one to the end of `body`.
        let mut after = 0;
        let mut word_follows = false;
        for (i, c) in body.char_indices().rev() {
            if word_follows && (c.is_whitespace() || matches!(c, '。' | '！' | '？')) {
                let start = previous.start + i + c.len_utf8();
                best = Some(Span {
                    start,
                    end: previous.end,
                    chars: after,
                });
            }
            after += 1;
            if after > room {
                break;
            }
            word_follows = !c.is_whitespace();
        }
        best
    }

    fn emit(&mut self, span: Span) {
        let body = &self.text[span.start..span.end];
        let mut content = String::with_capacity(self.trail.len() + 1 + body.len());
        if !self.trail.is_empty() {
            content.push_str(&self.trail);
            content.push('\n');
        }
        content.push_str(body);
        self.chunks.push(TextChunk {
            content,
            headings: self.headings.clone(),
            index: self.chunks.len(),
        });
    }
}

/// `start..end` without surrounding whitespace, with its character count;
/// `None` when nothing is left.
fn trimmed_span(text: &str, start: usize, end: usize) -> Option<Span> {
    let slice = &text[start..end];
    let trimmed = slice.trim_start();
    let start = start + (slice.len() - trimmed.len());
    let trimmed = trimmed.trim_end();
    if trimmed.is_empty() {
        return None;
    }
    Some(Span {
        start,
        end: start + trimmed.len(),
        chars: trimmed.chars().count(),
    })
}

/// Up to three spaces of indentation, as CommonMark allows before a heading
/// or a fence.
fn strip_indent(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches(' ');
    (line.len() - rest.len() <= 3).then_some(rest)
}

/// An ATX heading's level and title, without the optional closing `#`s.
fn parse_heading(line: &str) -> Option<(usize, &str)> {
    let rest = strip_indent(line)?;
    let level = rest.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let after = &rest[level..];
    if !after.starts_with([' ', '\t']) {
        return None;
    }
    let title = after.trim();
    let unclosed = title.trim_end_matches('#');
    let title = if unclosed.is_empty() {
        ""
    } else if unclosed.ends_with([' ', '\t']) {
        unclosed.trim_end()
    } else {
        title
    };
    Some((level, title))
}

/// The marker and length of a line that opens a fenced code block.
fn parse_fence(line: &str) -> Option<(u8, usize)> {
    let rest = strip_indent(line)?;
    let marker = *rest.as_bytes().first()?;
    if marker != b'`' && marker != b'~' {
        return None;
    }
    let len = rest.bytes().take_while(|&b| b == marker).count();
    // A backtick fence's info string may not contain backticks.
    let valid = len >= 3 && (marker == b'~' || !rest[len..].contains('`'));
    valid.then_some((marker, len))
}

fn closes_fence(line: &str, fence: Fence) -> bool {
    let Some(rest) = strip_indent(line) else {
        return false;
    };
    let len = rest.bytes().take_while(|&b| b == fence.marker).count();
    len >= fence.len && rest[len..].trim().is_empty()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn options(max_chars: usize, overlap_chars: usize) -> ChunkOptions {
        ChunkOptions {
            max_chars,
            overlap_chars,
        }
    }

    /// Chunks `text`, checks the invariants every result must keep, and
    /// compares a readable rendering with `expected`.
    fn check_chunks(text: &str, options: ChunkOptions, expected: &str) {
        let chunks = chunk_markdown(text, options);
        assert_invariants(&chunks, options);
        let rendered: Vec<String> = chunks
            .iter()
            .map(|chunk| format!("[{}] {:?}\n{}\n", chunk.index, chunk.headings, chunk.content))
            .collect();
        assert_eq!(rendered.join("---\n"), expected);
    }

    /// The body of a chunk: its content without the trail line.
    fn body(chunk: &TextChunk) -> &str {
        if chunk.headings.is_empty() {
            &chunk.content
        } else {
            chunk.content.split_once('\n').expect("a trail line").1
        }
    }

    /// The bound [`chunk_markdown`] documents, computed on its own.
    fn bound(options: ChunkOptions, chunk: &TextChunk) -> usize {
        let m = options.max_chars.max(1);
        if chunk.headings.is_empty() {
            m
        } else {
            let t = chunk.headings.join(" > ").chars().count();
            m.max(t + 1 + (m / 2).max(1))
        }
    }

    fn assert_invariants(chunks: &[TextChunk], options: ChunkOptions) {
        for (i, chunk) in chunks.iter().enumerate() {
            assert_eq!(chunk.index, i, "indices count up from zero");
            if !chunk.headings.is_empty() {
                let trail = chunk.headings.join(" > ");
                assert!(
                    chunk.content.starts_with(&format!("{trail}\n")),
                    "trail line first: {chunk:?}"
                );
            }
            let body = body(chunk);
            assert!(!body.is_empty(), "empty chunk: {chunk:?}");
            assert_eq!(body, body.trim(), "untrimmed chunk: {chunk:?}");
            let chars = chunk.content.chars().count();
            assert!(
                chars <= bound(options, chunk),
                "{chars} chars over the bound: {chunk:?}"
            );
            let trail_chars = chunk.content.chars().count() - body.chars().count();
            assert!(
                chars <= options.max_chars.max(1) + trail_chars,
                "over max_chars + trail: {chunk:?}"
            );
        }
    }

    /// The longest tail of `previous` that `next` starts with.
    fn overlap_between<'a>(previous: &str, next: &'a str) -> &'a str {
        let mut longest = "";
        for (i, _) in previous.char_indices() {
            if next.starts_with(&previous[i..]) {
                longest = &previous[i..];
                break;
            }
        }
        &next[..longest.len()]
    }

    /// Checks that every chunk body is a slice of the (normalised) input,
    /// in document order.
    fn assert_in_order(text: &str, chunks: &[TextChunk]) {
        let text = text.replace("\r\n", "\n");
        let mut from = 0;
        for chunk in chunks {
            let body = body(chunk);
            let found = text[from..].find(body);
            assert!(
                found.is_some(),
                "chunk {} is not a slice of the input in order: {body:?}",
                chunk.index
            );
            from += found.unwrap_or(0);
        }
    }

    /// Whitespace-separated words, also cut after full-width sentence ends
    /// (where the chunker may split text that has no spaces).
    fn words_of(text: &str) -> impl Iterator<Item = &str> {
        text.split_whitespace()
            .flat_map(|word| word.split_inclusive(['。', '！', '？']))
    }

    /// Checks that no text of `body_text` (the input without its heading
    /// lines) is lost: each word that fits a chunk appears in the chunk
    /// bodies at least as often as in the input, and so does every other
    /// character (overlong words are split but keep their characters).
    fn assert_keeps_text(body_text: &str, chunks: &[TextChunk], options: ChunkOptions) {
        let bodies: Vec<&str> = chunks.iter().map(body).collect();
        let fits = (options.max_chars.max(1) / 2).max(1);
        let mut words: HashMap<&str, isize> = HashMap::new();
        for word in words_of(body_text).filter(|word| word.chars().count() <= fits) {
            *words.entry(word).or_default() += 1;
        }
        for word in bodies.iter().flat_map(|body| words_of(body)) {
            if let Some(count) = words.get_mut(word) {
                *count -= 1;
            }
        }
        let lost: Vec<_> = words.iter().filter(|(_, count)| **count > 0).collect();
        assert!(lost.is_empty(), "words lost: {lost:?}");

        let mut chars: HashMap<char, isize> = HashMap::new();
        for c in body_text.chars().filter(|c| !c.is_whitespace()) {
            *chars.entry(c).or_default() += 1;
        }
        for c in bodies.iter().flat_map(|body| body.chars()) {
            if let Some(count) = chars.get_mut(&c) {
                *count -= 1;
            }
        }
        let lost: Vec<_> = chars.iter().filter(|(_, count)| **count > 0).collect();
        assert!(lost.is_empty(), "characters lost: {lost:?}");
    }

    #[test]
    fn headings_make_sections_whose_trails_pop_levels() {
        let text = "# Account\nManage your account.\n\n## Passwords\nReset it from settings.\n\n\
                    ### Rules\nTwelve characters.\n\n## Email\nChange it here.\n\n# Billing\nInvoices.\n";
        check_chunks(
            text,
            ChunkOptions::default(),
            "[0] [\"Account\"]\nAccount\nManage your account.\n\
             ---\n[1] [\"Account\", \"Passwords\"]\nAccount > Passwords\nReset it from settings.\n\
             ---\n[2] [\"Account\", \"Passwords\", \"Rules\"]\nAccount > Passwords > Rules\nTwelve characters.\n\
             ---\n[3] [\"Account\", \"Email\"]\nAccount > Email\nChange it here.\n\
             ---\n[4] [\"Billing\"]\nBilling\nInvoices.\n",
        );
    }

    #[test]
    fn a_heading_without_body_only_adds_to_the_trail() {
        let text = "Intro before any heading.\n\n# Guide\n## Install\n### Linux\nRun the script.\n\
                    ## Empty sibling\n## Use\nOpen it.\n# Trailing heading\n";
        check_chunks(
            text,
            ChunkOptions::default(),
            "[0] []\nIntro before any heading.\n\
             ---\n[1] [\"Guide\", \"Install\", \"Linux\"]\nGuide > Install > Linux\nRun the script.\n\
             ---\n[2] [\"Guide\", \"Use\"]\nGuide > Use\nOpen it.\n",
        );
    }

    #[test]
    fn heading_syntax_follows_atx() {
        let text = "#hashtag is text\n####### seven is text\n    # indented code is text\n\n\
                    ##   Closed heading ##  \nBody.\n\n   ### C# stays ###\nMore.\n\n#\tTabbed\nLast.\n";
        check_chunks(
            text,
            ChunkOptions::default(),
            "[0] []\n#hashtag is text\n####### seven is text\n    # indented code is text\
             \n---\n[1] [\"Closed heading\"]\nClosed heading\nBody.\
             \n---\n[2] [\"Closed heading\", \"C# stays\"]\nClosed heading > C# stays\nMore.\
             \n---\n[3] [\"Tabbed\"]\nTabbed\nLast.\n",
        );
    }

    #[test]
    fn hash_lines_inside_code_fences_are_not_headings() {
        let text = "# Setup\nRun this:\n\n```sh\n# install\napt-get install kiln\n\n## not a heading\n```\n\n\
                    ~~~\n# still code\n```\n~~~\nAfter the code.\n";
        check_chunks(
            text,
            ChunkOptions::default(),
            "[0] [\"Setup\"]\nSetup\nRun this:\n\n```sh\n# install\napt-get install kiln\n\n## not a heading\n```\
             \n\n~~~\n# still code\n```\n~~~\nAfter the code.\n",
        );
    }

    #[test]
    fn an_unclosed_fence_runs_to_the_end() {
        let text = "# Top\nText.\n```\n# inside\n# also inside\n";
        check_chunks(
            text,
            ChunkOptions::default(),
            "[0] [\"Top\"]\nTop\nText.\n```\n# inside\n# also inside\n",
        );
    }

    #[test]
    fn a_code_block_is_kept_whole_when_it_fits() {
        // 40 chars of room; the fitting code block is not cut although the
        // paragraph before it fills part of a chunk.
        let code = "```\nlet a = 1;\nlet b = 2;\n```";
        let text = format!("Short para.\n\n{code}\n\nTail.");
        check_chunks(
            &text,
            options(40, 0),
            "[0] []\nShort para.\
             \n---\n[1] []\n```\nlet a = 1;\nlet b = 2;\n```\n\nTail.\n",
        );
    }

    #[test]
    fn a_long_code_block_is_split_by_lines() {
        let text = "```rust\nfn one() {}\nfn two() {}\nfn three() {}\n```";
        check_chunks(
            text,
            options(31, 0),
            "[0] []\n```rust\nfn one() {}\nfn two() {}\
             \n---\n[1] []\nfn three() {}\n```\n",
        );
    }

    #[test]
    fn paragraphs_are_packed_whole_within_a_section() {
        let text = "First paragraph here.\n\nSecond one.\n\nThird paragraph is longer.\n\nFourth.";
        // 21 + 2 + 11 = 34 fits in 40; the third (26) does not join them.
        check_chunks(
            text,
            options(40, 0),
            "[0] []\nFirst paragraph here.\n\nSecond one.\
             \n---\n[1] []\nThird paragraph is longer.\n\nFourth.\n",
        );
        for chunk in chunk_markdown(text, options(40, 0)) {
            for paragraph in body(&chunk).split("\n\n") {
                assert!(
                    text.split("\n\n").any(|whole| whole == paragraph),
                    "split: {paragraph:?}"
                );
            }
        }
    }

    #[test]
    fn sections_are_not_merged_across_headings() {
        let text = "# A\none\n# B\ntwo\n## C\nthree";
        let chunks = chunk_markdown(text, ChunkOptions::default());
        let bodies: Vec<&str> = chunks.iter().map(body).collect();
        assert_eq!(bodies, ["one", "two", "three"]);
    }

    #[test]
    fn the_trail_line_counts_towards_the_size() {
        // "Guide" + newline take 6 of 30 characters, leaving 24 for the body.
        let text = "# Guide\naaaa bbbb cccc dddd eeee ffff gggg";
        check_chunks(
            text,
            options(30, 0),
            "[0] [\"Guide\"]\nGuide\naaaa bbbb cccc dddd eeee\
             \n---\n[1] [\"Guide\"]\nGuide\nffff gggg\n",
        );
    }

    #[test]
    fn a_long_trail_keeps_half_the_budget_for_the_body() {
        let text = "# A very long heading title\n## And a second long one\n\
                    Body words that go on for a while here.";
        let chunks = chunk_markdown(text, options(20, 0));
        assert_invariants(&chunks, options(20, 0));
        // The 49-character trail leaves the body half of 20 characters.
        for chunk in &chunks {
            assert!(body(chunk).chars().count() <= 10, "{chunk:?}");
            assert!(chunk.content.chars().count() <= 49 + 1 + 10);
        }
        let bodies: Vec<&str> = chunks.iter().map(body).collect();
        assert_eq!(bodies, ["Body words", "that go on", "for a", "while", "here."]);
    }

    #[test]
    fn a_long_paragraph_is_split_at_sentence_boundaries() {
        let text = "The kiln heats up slowly. Is it ready yet? Wait for the light! \
                    Then load the shelves.\nClose the door. Start the program.";
        let options = options(50, 0);
        check_chunks(
            text,
            options,
            "[0] []\nThe kiln heats up slowly. Is it ready yet?\
             \n---\n[1] []\nWait for the light! Then load the shelves.\
             \n---\n[2] []\nClose the door. Start the program.\n",
        );
        for chunk in chunk_markdown(text, options) {
            assert!(
                body(&chunk).ends_with(['.', '?', '!']),
                "cut inside a sentence: {chunk:?}"
            );
        }
    }

    #[test]
    fn a_long_sentence_falls_back_to_word_boundaries() {
        let text = "one two three four five six seven eight nine ten eleven twelve";
        check_chunks(
            text,
            options(20, 0),
            "[0] []\none two three four\
             \n---\n[1] []\nfive six seven eight\
             \n---\n[2] []\nnine ten eleven\
             \n---\n[3] []\ntwelve\n",
        );
    }

    #[test]
    fn an_overlong_word_is_hard_split_on_char_boundaries() {
        let word = "é".repeat(9) + "🔥🔥";
        let text = format!("# H\nstart {word} end");
        let options = options(8, 0);
        let chunks = chunk_markdown(&text, options);
        assert_invariants(&chunks, options);
        let bodies: Vec<&str> = chunks.iter().map(body).collect();
        // The trail "H" leaves 6 characters to the body.
        assert_eq!(bodies, ["start", "éééééé", "ééé🔥🔥", "end"]);
        assert_eq!(bodies[1..3].concat(), word);
    }

    #[test]
    fn overlap_repeats_the_previous_tail_from_a_word_start() {
        let text = "# Care\nAlpha beta gamma delta. Epsilon zeta eta theta. Iota kappa lambda mu. \
                    Nu xi omicron pi. Rho sigma tau upsilon.";
        let options = options(60, 15);
        check_chunks(
            text,
            options,
            "[0] [\"Care\"]\nCare\nAlpha beta gamma delta. Epsilon zeta eta theta.\
             \n---\n[1] [\"Care\"]\nCare\nzeta eta theta. Iota kappa lambda mu. Nu xi omicron pi.\
             \n---\n[2] [\"Care\"]\nCare\nxi omicron pi. Rho sigma tau upsilon.\n",
        );
        let chunks = chunk_markdown(text, options);
        for pair in chunks.windows(2) {
            let (previous, next) = (body(&pair[0]), body(&pair[1]));
            let overlap = overlap_between(previous, next);
            assert!(
                !overlap.is_empty(),
                "no overlap between {previous:?} and {next:?}"
            );
            assert!(overlap.chars().count() <= 15);
            let before = previous[..previous.len() - overlap.len()].chars().next_back();
            assert!(
                before.is_some_and(char::is_whitespace),
                "overlap {overlap:?} starts inside a word"
            );
            assert_eq!(
                pair[1].content.matches("Care").count(),
                1,
                "the trail is not repeated"
            );
        }
    }

    #[test]
    fn overlap_does_not_cross_headings() {
        let text = "# One\nfirst section words here\n# Two\nsecond section words here";
        let chunks = chunk_markdown(text, options(30, 10));
        let bodies: Vec<&str> = chunks.iter().map(body).collect();
        assert_eq!(bodies, ["first section words here", "second section words here"]);
    }

    #[test]
    fn overlap_shrinks_so_the_next_piece_fits() {
        // The second paragraph takes 25 of 30 characters: only "cc" (2) fits
        // before it with the blank line (2).
        let text = "aaaa bbbb cc\n\nddddddddd eeeeeeeee fffff";
        check_chunks(
            text,
            options(30, 12),
            "[0] []\naaaa bbbb cc\
             \n---\n[1] []\ncc\n\nddddddddd eeeeeeeee fffff\n",
        );
    }

    #[test]
    fn multibyte_text_respects_the_bound() {
        let pieces = [
            "日本語の文章です。",
            "カイルン",
            "🔥",
            "👩‍👩‍👧",
            "é",
            "naïve",
            "Ünïcödé.",
            "한국어",
            "?",
            " ",
            "\n",
            "\n\n",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..120 {
            let mut text = String::new();
            if round % 3 == 0 {
                text.push_str("# 見出し\n## 🔥 Sub\n");
            }
            for _ in 0..rng.below(300) {
                text.push_str(pieces[rng.below(pieces.len())]);
            }
            let body_text: String = text
                .lines()
                .filter(|line| !line.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n");
            for max_chars in [1, 2, 3, 7, 16, 64, 1200] {
                for overlap_chars in [0, 2, 30] {
                    let options = options(max_chars, overlap_chars);
                    let chunks = chunk_markdown(&text, options);
                    assert_invariants(&chunks, options);
                    assert_in_order(&text, &chunks);
                    assert_keeps_text(&body_text, &chunks, options);
                }
            }
        }
    }

    #[test]
    fn crlf_line_endings_are_normalised() {
        let text = "# Title\r\nLine one\r\nline two\r\n\r\n## Sub\r\nBody\r\n";
        check_chunks(
            text,
            ChunkOptions::default(),
            "[0] [\"Title\"]\nTitle\nLine one\nline two\
             \n---\n[1] [\"Title\", \"Sub\"]\nTitle > Sub\nBody\n",
        );
        let chunks = chunk_markdown(text, ChunkOptions::default());
        assert!(chunks.iter().all(|chunk| !chunk.content.contains('\r')));
    }

    #[test]
    fn empty_and_whitespace_input_give_no_chunks() {
        for text in ["", " ", "\n\n", "\r\n\t \r\n", "   \n  \n"] {
            assert_eq!(chunk_markdown(text, ChunkOptions::default()), []);
        }
        // A heading alone has no body to index.
        assert_eq!(chunk_markdown("# Only a title\n\n", ChunkOptions::default()), []);
    }

    #[test]
    fn text_without_headings_has_no_trail() {
        let text = "name: kiln\nkind: csv row\n\nsecond row here";
        check_chunks(
            text,
            ChunkOptions::default(),
            "[0] []\nname: kiln\nkind: csv row\n\nsecond row here\n",
        );
    }

    #[test]
    fn generated_documents_keep_every_word_in_order_with_indices() {
        let words = [
            "kiln",
            "glaze",
            "cone",
            "bisque",
            "firing.",
            "temperature?",
            "ready!",
            "clay",
            "wedge",
            "shelf",
            "pyrometer",
            "reduction,",
            "oxidation",
            "über",
            "café",
            "温度",
            "焼成。",
            "🔥",
            "x",
        ];
        let mut rng = Rng(42);
        for _ in 0..150 {
            let mut text = String::new();
            let mut body_text = String::new();
            let newline = if rng.below(4) == 0 { "\r\n" } else { "\n" };
            for _ in 0..rng.below(12) {
                match rng.below(6) {
                    0 => {
                        let level = 1 + rng.below(4);
                        text.push_str(&format!(
                            "{} {}{newline}",
                            "#".repeat(level),
                            words[rng.below(words.len())]
                        ));
                    }
                    1 => {
                        let code = format!(
                            "```{newline}# not a heading {}{newline}```{newline}",
                            rng.below(99)
                        );
                        text.push_str(&code);
                        body_text.push_str(&code);
                    }
                    _ => {
                        let mut paragraph = String::new();
                        for _ in 0..1 + rng.below(120) {
                            paragraph.push_str(words[rng.below(words.len())]);
                            paragraph.push_str(if rng.below(15) == 0 { newline } else { " " });
                        }
                        paragraph.push_str(newline);
                        text.push_str(&paragraph);
                        text.push_str(newline);
                        body_text.push_str(&paragraph);
                        body_text.push('\n');
                    }
                }
            }
            for options in [
                ChunkOptions::default(),
                options(80, 12),
                options(25, 6),
                options(5, 2),
            ] {
                let chunks = chunk_markdown(&text, options);
                assert_invariants(&chunks, options);
                assert_in_order(&text, &chunks);
                assert_keeps_text(&body_text, &chunks, options);
                assert!(
                    chunks
                        .iter()
                        .all(|chunk| chunk.headings.iter().all(|h| !h.contains("not a heading")))
                );
            }
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let options = ChunkOptions::default();
        assert_eq!((options.max_chars, options.overlap_chars), (1_200, 180));
    }

    /// A small deterministic generator (xorshift64), so the generated cases
    /// are the same on every run.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }
}
