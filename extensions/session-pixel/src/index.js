// The extension's entry point, as Shopify's app tooling expects it: register() hands the pixel its APIs.
// Everything else is in pixel.js, a plain module with no imports, so that a test page can load it in a browser
// with stand-ins for those APIs.
import { register } from "@shopify/web-pixels-extension";

import { startPixel } from "./pixel.js";

register(startPixel);
