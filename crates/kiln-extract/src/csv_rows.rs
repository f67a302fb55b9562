//! CSV to Markdown: one paragraph per data row, `Header: value; ...`, so a
//! chunk holds whole rows and every value carries its column name.

use csv::{ErrorKind, ReaderBuilder, Trim};

/// Renders `text` (the first row being the header) as one paragraph per
/// data row, skipping empty values and rows with no values.
pub(crate) fn to_markdown(text: &str) -> Result<String, String> {
    let mut reader = ReaderBuilder::new().trim(Trim::All).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(malformed)?
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if name.is_empty() {
                format!("Column {}", i + 1)
            } else {
                one_line(name)
            }
        })
        .collect();

    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(malformed)?;
        let row: Vec<String> = headers
            .iter()
            .zip(record.iter())
            .filter(|(_, value)| !value.is_empty())
            .map(|(header, value)| format!("{header}: {}", one_line(value)))
            .collect();
        if !row.is_empty() {
            rows.push(row.join("; "));
        }
    }
    Ok(rows.join("\n\n"))
}

/// A quoted value may span lines; inside a row paragraph it must not, or
/// a blank line in it would split the row.
fn one_line(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn malformed(error: csv::Error) -> String {
    let line = error.position().map_or(0, csv::Position::line);
    match error.kind() {
        ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!(
                "malformed CSV on line {line}: the row has {len} fields but the header has {expected_len}"
            )
        }
        _ => format!("malformed CSV on line {line}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_header_cells_get_a_column_name() {
        assert_eq!(to_markdown("id,,note\n1,x,\n").unwrap(), "id: 1; Column 2: x");
    }

    #[test]
    fn header_only_has_no_rows() {
        assert_eq!(to_markdown("a,b\n").unwrap(), "");
    }
}
