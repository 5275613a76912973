/**
 * xtext (RFC 3461 4): "+" followed by two hex digits stands for a byte; used by ENVID and ORCPT. And the
 * utf-8-addr-xtext form of RFC 6533 (\x{HEX}) for non-ASCII addresses in 7-bit delivery-status fields.
 */
export function decodeXtext(text: string): string {
  return text.replace(/\+([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** RFC 6533 utf-8-addr-xtext: ASCII kept (but for "\", "+", "=", controls and space), the rest as \x{HEX}. */
export function encodeUtf8AddrXtext(address: string): string {
  let out = '';
  for (const ch of address) {
    const code = ch.codePointAt(0) as number;
    const qchar = code > 0x20 && code < 0x7f && ch !== '\\' && ch !== '+' && ch !== '=';
    out += qchar ? ch : `\\x{${code.toString(16).toUpperCase()}}`;
  }
  return out;
}
