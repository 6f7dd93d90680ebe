/**
 * Which local ESPs `mailover dev` and the demo run: the emulators of which kinds, under which
 * provider names, with which settings of their own. The only place outside src/providers/ that
 * names kinds; everything else about them comes from their modules (src/providers/modules.ts).
 * The demo (samples/campaign.yaml) sends through smtp-primary with mailgun as the backup.
 */
import { providerModule } from '../providers/modules';

/** The provider file `mailover dev` writes into its data directory; other commands pick it up by default. */
export const DEV_CONFIG_FILE = 'mailover.dev.yaml';

export interface DevEspPlan {
  kind: string;
  /** The provider name (and the emulator's). */
  name: string;
  /** Settings merged into the definition the emulator's module gives. */
  settings?: Record<string, unknown>;
}

export const DEV_ESPS: readonly DevEspPlan[] = [
  { kind: 'smtp', name: 'smtp-primary', settings: { pool: { maxConnections: 4 } } },
  { kind: 'smtp', name: 'smtp-backup', settings: { pool: { maxConnections: 4 } } },
  { kind: 'mailgun', name: 'mailgun', settings: { domain: 'mg.mailover.dev' } },
  { kind: 'postmark', name: 'postmark' },
  { kind: 'sendgrid', name: 'sendgrid' },
  { kind: 'ses', name: 'ses' },
];

/** The local ESPs, for help texts: `smtp-primary: an SMTP inbox, ...`. */
export function describeDevEsps(): string {
  return DEV_ESPS.map((p) => `${p.name}: ${providerModule(p.kind).emulator?.description ?? 'no emulator'}`).join(', ');
}
