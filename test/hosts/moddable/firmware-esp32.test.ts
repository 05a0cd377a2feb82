// The real firmware under the esp32 creation settings: see ./firmware-suite.ts.
import { firmwareSuite } from "./firmware-suite";

firmwareSuite("esp32");
