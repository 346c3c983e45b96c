//! The macros' compile errors, as a user sees them (`TRYBUILD=overwrite` rewrites the
//! `.stderr` files; read them before committing), and one program that compiles and runs.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
