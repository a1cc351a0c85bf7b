"""The virtual site behind `marquee-edge simulate`: tills and card readers played on ptys and sockets."""
