//! CSV rows become one `Header: value; ...` paragraph each.

use kiln_core::rag::DocumentKind;

use crate::{error, markdown};

#[test]
fn quoted_fields_stay_whole_and_rows_are_paragraphs() {
    let csv = concat!(
        "name,city,note\r\n",
        "\"Smith, Anna\",Berlin,\"said \"\"hi\"\"\"\r\n",
        "Bob,,\"two\n\nlines\"\r\n",
        ",,\r\n",
        "Chen,Lyon,\r\n",
    );

    assert_eq!(
        markdown(DocumentKind::Csv, csv.as_bytes()),
        concat!(
            "name: Smith, Anna; city: Berlin; note: said \"hi\"\n",
            "\n",
            "name: Bob; note: two lines\n",
            "\n",
            "name: Chen; city: Lyon",
        )
    );
}

#[test]
fn a_row_with_the_wrong_number_of_fields_names_its_line() {
    let csv = "a,b,c\n1,2,3\n\"multi\nline\",5,6\n7,8\n";
    assert_eq!(
        error(DocumentKind::Csv, csv.as_bytes()),
        "malformed CSV on line 5: the row has 2 fields but the header has 3"
    );
}
