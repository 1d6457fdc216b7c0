"""Users' mailboxes seen as their owners see them: ``merge`` plans merging recovered copies of
folders into the live ones (pure), ``account`` opens a user's account on its pair's live member
over IMAP and carries a plan out.
"""
