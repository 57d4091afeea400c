//! The plumbing every view shares, as macros: the wrapper type and its
//! fixed-offset big-endian fields.

/// Declares a view `$name<T: AsRef<[u8]>>` over a buffer with
/// `into_inner`, and private `b()`/`m()` for the buffer.
macro_rules! view {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// The wrapped buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }

            #[allow(dead_code)]
            fn b(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            #[allow(dead_code)]
            fn m(&mut self) -> &mut [u8] {
                self.buffer.as_mut()
            }
        }
    };
}

/// Getters and setters of big-endian fields at fixed offsets inside the
/// length `new_checked` guarantees (so the slices always exist; the
/// fallback to zero is never taken).
macro_rules! fields {
    ($name:ident { $($(#[$doc:meta])* $get:ident, $set:ident: $ty:ty = $at:expr;)* }) => {
        impl<T: AsRef<[u8]>> $name<T> {
            $(
                $(#[$doc])*
                pub fn $get(&self) -> $ty {
                    let n = std::mem::size_of::<$ty>();
                    self.b()
                        .get($at..$at + n)
                        .and_then(|s| s.try_into().ok())
                        .map(<$ty>::from_be_bytes)
                        .unwrap_or_default()
                }
            )*
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            $(
                #[doc = concat!("Sets the field [`Self::", stringify!($get), "`] reads.")]
                pub fn $set(&mut self, v: $ty) {
                    let n = std::mem::size_of::<$ty>();
                    if let Some(s) = self.m().get_mut($at..$at + n) {
                        s.copy_from_slice(&v.to_be_bytes());
                    }
                }
            )*
        }
    };
}
