// Prompt templates (our own wording). {user} stands for the user's K id tokens, {history} for
// the id tokens of the items the user interacted with (a set: shuffled, not a sequence).
// Ten templates are drawn at random per training sample; the "unseen" template is used only at
// test time to check that the model does not depend on the training wording; "id-only" prompts
// carry no history at all.

export const TRAIN_TEMPLATES: readonly string[] = [
  'user {user} has interacted with {history} . what should we recommend to this user ?',
  'here is user {user} . items they liked : {history} . suggest the next item for them .',
  'given the items {history} chosen by user {user} , predict another item the user will choose .',
  'user {user} enjoyed {history} . which item would this user enjoy as well ?',
  'recommend an item to user {user} , whose history holds {history} .',
  'the following items were picked by user {user} : {history} . find one more item for the user .',
  'history of user {user} : {history} . what item comes to mind for this user ?',
  'based on {history} , pick an item that user {user} is likely to want .',
  'user {user} likes {history} . propose a fitting item .',
  'what would user {user} choose next , knowing the user chose {history} ?',
];

/** Held out from training; used by `eval --prompt unseen`. */
export const UNSEEN_TEMPLATE = 'considering that user {user} engaged with {history} , name a suitable item for the user .';

/** No history: the user's id tokens alone. */
export const ID_ONLY_TEMPLATE = 'recommend an item to user {user} .';

export type PromptKind = 'seen' | 'unseen' | 'id-only';

/** The template words of every prompt (the text vocabulary is built from them). */
export function templateWords(): string[] {
  const words = new Set<string>();
  for (const t of [...TRAIN_TEMPLATES, UNSEEN_TEMPLATE, ID_ONLY_TEMPLATE]) {
    for (const w of t.split(' ')) if (w && w !== '{user}' && w !== '{history}') words.add(w);
  }
  return [...words].sort();
}

/**
 * Expands a template into token strings. `user` holds the user's id tokens; `history` one list
 * of id tokens per item (items are separated by ','; an empty history renders as 'nothing').
 */
export function renderTemplate(template: string, user: string[], history: string[][]): string[] {
  const out: string[] = [];
  for (const w of template.split(' ')) {
    if (w === '{user}') out.push(...user);
    else if (w === '{history}') {
      if (history.length === 0) out.push('nothing');
      history.forEach((h, i) => {
        if (i > 0) out.push(',');
        out.push(...h);
      });
    } else if (w) out.push(w);
  }
  return out;
}
