// Creates a complete pack (six product images and their A+ content, as one flow): see api.ts.
import { packHandler } from './api.ts';

Deno.serve(packHandler());
