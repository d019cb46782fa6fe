fn main() {
    println!("switchboard");
}
