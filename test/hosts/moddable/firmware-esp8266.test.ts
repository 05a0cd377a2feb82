// The real firmware under the esp8266 creation settings: see ./firmware-suite.ts.
import { firmwareSuite } from "./firmware-suite";

firmwareSuite("esp8266");
