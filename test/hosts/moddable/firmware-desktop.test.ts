// The real firmware under the desktop creation settings: see ./firmware-suite.ts.
import { firmwareSuite } from "./firmware-suite";

firmwareSuite("desktop");
