"""Builds an encrypted LoRaWAN 1.0 data uplink with pamoja-lorawan (an implementation
independent of the Rust `lorawan` crate) and prints the PHYPayload in base64.

Usage: lorawan_uplink.py DEVADDR_HEX NWKSKEY_HEX APPSKEY_HEX FCNT FPORT PAYLOAD_HEX
"""

import base64
import sys

from pamoja import lorawan


def main():
    dev_addr = int(sys.argv[1], 16)
    nwk_s_key, app_s_key = bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
    fcnt, fport = int(sys.argv[4]), int(sys.argv[5])
    payload = bytes.fromhex(sys.argv[6])
    session = lorawan.session(dev_addr, nwk_s_key, app_s_key)
    frame = session.encode_uplink(fcnt, fport, payload)
    print(base64.b64encode(bytes(frame)).decode())


if __name__ == "__main__":
    main()
