//! A bare actix-web hello-world, measured beside idp in the same benchmark run.
use actix_web::{App, HttpServer, get};

#[get("/")]
async fn hello() -> &'static str {
    "ok"
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8089".to_owned());
    HttpServer::new(|| App::new().service(hello)).bind(bind)?.run().await
}
