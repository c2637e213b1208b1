// The embedded migrations are read at compile time; without this, adding a migration folder would not
// trigger a rebuild.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
