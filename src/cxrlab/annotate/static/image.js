// Display data at full bit depth: the service's rendition as little-endian uint16 rows, windowed here.
// (GET /api/images/{id}/pixels: the same rows as ``display?format=raw``, served from a file made once.)
// A 16-bit PNG drawn on a canvas is cut to 8 bits by the browser, so the raw rows are fetched instead and
// every window / level change maps the 16-bit values through a fresh 65,536-entry table.

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The rendition's pixels of an image (``info`` is GET /api/images/{id}); level 1 is halved. */
export async function loadPixels(info, level = 0) {
  const response = await fetch(`/api/images/${info.id}/pixels?level=${level}`, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`image ${info.id}: display data answered ${response.status}`);
  const width = Number(response.headers.get("X-Width"));
  const height = Number(response.headers.get("X-Height"));
  const buffer = await response.arrayBuffer();
  if (buffer.byteLength !== width * height * 2) {
    throw new Error(`image ${info.id}: ${buffer.byteLength} bytes for ${width} x ${height} pixels`);
  }
  let data = new Uint16Array(buffer);
  if (!LITTLE_ENDIAN) {
    const view = new DataView(buffer);
    data = Uint16Array.from({ length: width * height }, (_, i) => view.getUint16(2 * i, true));
  }
  return { width, height, data };
}

/** The grey level (0..255) a window gives a 16-bit value: linear between center -/+ width / 2. */
export function windowed(value, center, width, invert) {
  const low = center - width / 2;
  let grey = Math.round(((value - low) / width) * 255);
  grey = grey < 0 ? 0 : grey > 255 ? 255 : grey;
  return invert ? 255 - grey : grey;
}

function lookupTable(center, width, invert) {
  const table = new Uint32Array(65536);
  for (let v = 0; v < 65536; v++) {
    const g = windowed(v, center, width, invert);
    table[v] = 0xff000000 | (g << 16) | (g << 8) | g; // opaque grey, in either byte order
  }
  return table;
}

/** Window ``pixels`` into ``target`` (a canvas of the image's size). */
export function renderWindow(pixels, target, center, width, invert) {
  const table = lookupTable(center, width, invert);
  const context = target.getContext("2d");
  const image = context.createImageData(pixels.width, pixels.height);
  const out = new Uint32Array(image.data.buffer);
  const data = pixels.data;
  for (let i = 0; i < data.length; i++) out[i] = table[data[i]];
  context.putImageData(image, 0, 0);
}
