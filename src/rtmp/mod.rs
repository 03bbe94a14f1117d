//! Our sans-IO RTMP server side: bytes in, events and reply bytes out. No sockets, no clocks.
