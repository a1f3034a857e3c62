import { templateMac } from '../qemu/template-mac.js'

/**
 * Finds the NIC by its template MAC, gives it the member's MAC and address, and brings it up. The
 * first network also gets the multicast route, so a sender that names no interface (the usual
 * case) reaches the other members rather than the user-mode NIC's default route.
 */
export function nicScript(index: number, m: { network: string; ip: string; mac: string }): string {
  const template = templateMac(index)
  // Shell built-ins and busybox: the first start of a program over the 9p root costs a restored
  // guest 1.4-3.2 s under TCG for iproute2's ip, grep or flock (their libraries are read too);
  // busybox (static, one file) costs no more than the exec's own round trip (0.4 s). iproute2's
  // `ip -batch` where there is no busybox (an image without it).
  return `dev=
for d in /sys/class/net/*; do read a < "$d/address"; [ "$a" = ${template} ] && dev=\${d##*/}; done
[ -n "$dev" ] || { echo "vmctl: no NIC with MAC ${template} (network ${m.network})" >&2; exit 1; }
set -- "link set dev $dev address ${m.mac}" "addr add ${m.ip}/24 dev $dev" "link set dev $dev up" ${
    index === 0 ? `"route add 224.0.0.0/4 dev $dev"` : ''
  }
if command -v busybox >/dev/null; then for c; do busybox ip $c || exit 1; done
else printf '%s\\n' "$@" | ip -batch - || exit 1; fi`
}
