use hydraulics::inp::{read_file, InpError};
use std::path::Path;
#[test]
fn show() {
    for name in ["Net1broken", "bad_syntax", "bad_values"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../shared/networks/{name}.inp"));
        match read_file(&p) { Err(InpError::Invalid(v)) => for x in v { println!("{:?}", (x.line, x.section, x.code, x.message)); }, other => println!("{other:?}") }
    }
}
