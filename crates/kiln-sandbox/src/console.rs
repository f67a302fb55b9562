//! The captured `console` output of one block: lines joined by newlines, cut
//! on a char boundary at the output limit, so a chatty block cannot grow the
//! host's memory.

/// Console output within a byte budget.
#[derive(Debug)]
pub(crate) struct Console {
    text: String,
    limit: usize,
    lines: usize,
    truncated: bool,
}

impl Console {
    pub(crate) fn new(limit: usize) -> Console {
        Console {
            text: String::new(),
            limit,
            lines: 0,
            truncated: false,
        }
    }

    /// Appends one line, or as much of it as fits. Returns the bytes the next
    /// line may take (its separator already counted), or -1 once full.
    pub(crate) fn write(&mut self, line: &str) -> f64 {
        if self.truncated {
            return -1.0;
        }
        let separator = if self.lines == 0 { "" } else { "\n" };
        let room = self.limit - self.text.len();
        if separator.len() + line.len() <= room {
            self.text.push_str(separator);
            self.text.push_str(line);
            self.lines += 1;
        } else {
            self.truncated = true;
            if room > separator.len() {
                self.text.push_str(separator);
                let cut = line.floor_char_boundary(room - separator.len());
                self.text.push_str(&line[..cut]);
            }
            return -1.0;
        }
        // Lossless: a budget is far below 2^53 bytes.
        (self.limit - self.text.len()).saturating_sub(1) as f64
    }

    pub(crate) fn into_parts(self) -> (String, bool) {
        (self.text, self.truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_lines_and_reports_room() {
        let mut console = Console::new(10);
        assert_eq!(console.write("abc"), 6.0);
        assert_eq!(console.write(""), 5.0);
        assert_eq!(console.write("de"), 2.0);
        assert_eq!(console.into_parts(), ("abc\n\nde".to_owned(), false));
    }

    #[test]
    fn cuts_on_a_char_boundary() {
        let mut console = Console::new(6);
        assert_eq!(console.write("ab"), 3.0);
        // Four bytes are left: the separator and one two-byte "é" fit, and
        // the cut does not split the second.
        assert_eq!(console.write("ééé"), -1.0);
        assert_eq!(console.write("more"), -1.0);
        assert_eq!(console.into_parts(), ("ab\né".to_owned(), true));
    }

    #[test]
    fn a_full_line_that_only_leaves_the_separator_keeps_nothing() {
        let mut console = Console::new(3);
        assert_eq!(console.write("abc"), 0.0);
        assert_eq!(console.write("d"), -1.0);
        assert_eq!(console.into_parts(), ("abc".to_owned(), true));
    }
}
