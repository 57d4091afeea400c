//! The JSON control API: any bytes on the socket decode to a request or
//! an error; a decoded request or response reads back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_core::api::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<Request>(data) {
        let json = serde_json::to_vec(&req).expect("a request serializes");
        let back: Request = serde_json::from_slice(&json).expect("a request reads back");
        assert_eq!(req, back);
    }
    if let Ok(resp) = serde_json::from_slice::<Response>(data) {
        let json = serde_json::to_vec(&resp).expect("a response serializes");
        let back: Response = serde_json::from_slice(&json).expect("a response reads back");
        assert_eq!(resp, back);
    }
});
