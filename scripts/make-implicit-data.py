#!/usr/bin/env python3
"""Rule-generated *implicit* sentiment texts (synthetic; training only, never evaluation).

Writes JSONL rows {"text","label","lang","source":"rules","subset":"implicit-<lang>",
"domain":"review"|"post"} for en de fr es pt it hi ar zh ja. Standard library only;
deterministic for a given --seed. Templates were written in each language (not
translated word by word), with slot fillers (day/week/hour/year counts with the
language's own unit forms, prices in local currency, products, family members).
See models/rules-data.md, "Implicit family".

Labelling rules:
  neg : a complaint stated as a fact, with no (or one mild) evaluative word:
        late / missing / damaged / wrong delivery, stale tracking, shipping dearer
        than the item; price paid vs. budget-looking item, cheaper elsewhere, price
        dropped right after purchase with no refund of the difference, hidden fees;
        unanswered support, unprocessed refund, "ask the manufacturer", return label
        never sent, chat closed unsolved, warranty refused; broke / stopped after N
        days, battery N h instead of advertised M h (N < M), chemical smell, runs two
        sizes small, missing parts, too hot to touch when charging.
  pos : the fact-like counterpart: arrived N days early, replacement within hours,
        refund the same day, still works after N years, battery lasts more than
        advertised, cheaper here than in the shop for the same model, bought another
        for a family member, fits as the size chart says, dropped without a scratch.
  A text = [opener naming the product] + fact + [second fact of the same label]
  + [mild explicit cue of the same label, ~15 % drawn; ≤ 30 % kept]. "S" facts (never-received,
  stale tracking, size exchange) stand alone; "E" facts go only with electronics,
  "C" facts only with clothing. Domain "post" = one fact, no opener.

Usage: python3 scripts/make-implicit-data.py [--seed 7] [--per-label 400] [--out PATH]
"""
import argparse
import json
import os
import random
import sys

# slot key -> unit kind; numbers drawn per text (h < m always; H > M always)
SLOTS = {"d": ("day", 3, 14), "D": ("day_dat", 3, 14), "e": ("day", 3, 6), "w": ("week", 3, 8),
         "h": ("hour", 3, 6), "m": ("hour", 10, 24), "H": ("hour", 14, 30), "M": ("hour", 8, 12),
         "f": ("hour", 2, 6), "y": ("year", 3, 8), "Y": ("year_dat", 3, 8), "x": ("times", 3, 8)}
PRICES = [39, 49, 59, 79, 89, 99, 129, 149, 199, 249]
FEES = [5, 8, 10, 12, 15]


def ar_unit(pl, sg):
    # Arabic counted nouns: 3-10 take the plural, 11+ the singular
    return lambda n: f"{n} {pl if n <= 10 else sg}"


def fmt_units(d):
    return {k: (v if callable(v) else (lambda n, v=v: v.format(n=n))) for k, v in d.items()}


L = {}

L["en"] = dict(
    units={"day": "{n} days", "week": "{n} weeks", "hour": "{n} hours", "year": "{n} years", "times": "{n} times"},
    cur=lambda b: f"${b - 1}.99",
    prods=["E:the wireless earbuds", "E:the power bank", "E:the air fryer", "E:the smartwatch",
           "C:the rain jacket", "C:the fleece jacket", "C:the winter coat"],
    fam=["my mum", "my brother", "my sister", "my dad"],
    open=["Ordered {p}.", "Bought {p} for my son.", "Got {p} as a birthday present.", "Order #{o}."],
    neg=["Arrived {d} after the promised date.", "S:The tracking hasn't updated in {d}.",
         "The courier left the parcel outside in the rain.", "The box arrived crushed and the tape had already been cut.",
         "C:I ordered blue in M and got grey in XL.", "Shipping cost more than the item itself.",
         "S:Still waiting after {d}.", "S:Marked as delivered, but nothing ever reached my door.",
         "Paid {price} and it looks like something from a dollar store.", "The exact same item is {half} at another shop.",
         "The price dropped by {fee} two days after I bought it, and they won't refund the difference.",
         "Premium price, but it's a generic no-name product with a sticker on it.",
         "{fee} in fees appeared only at the final checkout step.",
         "Wrote to support {x}, still no answer.", "The refund still hasn't been processed after {w}.",
         "Support told me to contact the manufacturer myself.", "The return label they promised never arrived.",
         "The chat agent closed the conversation without solving anything.", "My warranty claim was refused.",
         "E:Stopped working after {d}.", "E:The battery lasts {h} instead of the advertised {m}.",
         "C:The zip broke the first time I used it.", "Still smells of chemicals after airing it for {d}.",
         "C:Runs two sizes small; the L fits like an S.", "E:Screws and the charger were missing from the box.",
         "E:Gets too hot to touch while charging."],
    pos=["Arrived {e} earlier than promised.", "Support sorted out a replacement within {f}.",
         "The refund was in my account the same day.", "E:Still works after {y} of daily use.",
         "E:The battery lasts {H}; the box says {M}.", "Paid {half} here; the shop in town wants {price} for the same model.",
         "Ordered a second one for {fam}.", "C:Fits exactly as the size chart says.",
         "E:Dropped it twice on tiles, not a scratch.", "Ordered at night, on my doorstep the next morning.",
         "C:Worn every day for {y}, and the seams are still intact.",
         "S:C:Exchanged for a bigger size, the new one came within a week, no questions asked."],
    cue_neg=["Disappointed.", "Not happy.", "Not what I expected."],
    cue_pos=["Happy with it.", "Very pleased.", "Recommended."],
)

L["de"] = dict(
    units={"day": "{n} Tage", "day_dat": "{n} Tagen", "week": "{n} Wochen", "hour": "{n} Stunden",
           "year": "{n} Jahre", "year_dat": "{n} Jahren", "times": "{n}-mal"},
    cur=lambda b: f"{b - 1},99 €",
    # feminine/neuter only: nominative = accusative
    prods=["E:die Powerbank", "E:das Ladegerät", "E:die Heißluftfritteuse", "E:die Smartwatch",
           "C:die Regenjacke", "C:die Winterjacke", "C:das Sommerkleid"],
    fam=["meine Mutter", "meinen Bruder", "meine Schwester", "meinen Vater"],
    open=["Habe {p} bestellt.", "Für meinen Sohn {p} gekauft.", "Zum Geburtstag {p} bekommen.", "Bestellung Nr. {o}."],
    neg=["Kam {d} nach dem zugesagten Liefertermin an.", "S:Die Sendungsverfolgung steht seit {D} auf demselben Status.",
         "Der Bote hat das Paket draußen im Regen abgestellt.", "Der Karton kam zerdrückt an und war schon geöffnet.",
         "C:Bestellt in Blau, Größe M, geliefert wurde Grau in XL.", "Der Versand hat mehr gekostet als der Artikel selbst.",
         "S:Warte seit {D} immer noch auf die Lieferung.", "S:Laut Sendungsverfolgung zugestellt, bei mir ist nichts angekommen.",
         "{price} bezahlt, und es wirkt wie etwas aus dem Ein-Euro-Laden.", "Genau derselbe Artikel kostet woanders {half}.",
         "Zwei Tage nach dem Kauf war der Preis um {fee} gesunken, die Differenz wird nicht erstattet.",
         "Markenpreis, aber drin steckt ein No-Name-Gerät mit aufgeklebtem Logo.",
         "Erst beim Bezahlen kamen noch {fee} Gebühren dazu.",
         "Habe den Kundenservice {x} angeschrieben, bis heute keine Antwort.", "Die Erstattung ist nach {w} immer noch nicht da.",
         "Der Support hat mich an den Hersteller verwiesen.", "Das versprochene Rücksendeetikett kam nie an.",
         "Der Chat wurde beendet, ohne dass mein Problem gelöst war.", "Mein Garantieantrag wurde abgelehnt.",
         "E:Nach {D} ging nichts mehr.", "E:Der Akku hält {h} statt der angegebenen {m}.",
         "C:Der Reißverschluss ist beim ersten Tragen gerissen.", "Riecht auch nach {D} Lüften noch stark nach Chemie.",
         "C:Fällt zwei Größen kleiner aus, L entspricht eher S.", "E:Im Karton fehlten Schrauben und das Netzteil.",
         "E:Wird beim Laden zu heiß zum Anfassen."],
    pos=["Kam {e} früher als angekündigt.", "Der Support hat innerhalb von {f} Ersatz veranlasst.",
         "Das Geld war noch am selben Tag wieder auf dem Konto.", "E:Läuft nach {Y} täglicher Nutzung immer noch.",
         "E:Der Akku hält {H}, angegeben sind {M}.", "Hier {half} bezahlt, im Laden kostet dasselbe Modell {price}.",
         "Habe dasselbe Modell gleich noch für {fam} bestellt.", "C:Sitzt genau so, wie es die Größentabelle angibt.",
         "E:Zweimal auf die Fliesen gefallen, kein Kratzer.", "Abends bestellt, am nächsten Morgen lag das Paket vor der Tür.",
         "C:Seit {Y} täglich getragen, alle Nähte halten noch.",
         "S:C:Umtausch in die größere Größe hat keine Woche gedauert, ohne Rückfragen."],
    cue_neg=["Enttäuschend.", "Schade.", "Nicht zufrieden."],
    cue_pos=["Bin zufrieden.", "Gerne wieder.", "Kann ich empfehlen."],
)

L["fr"] = dict(
    units={"day": "{n} jours", "week": "{n} semaines", "hour": "{n} heures", "year": "{n} ans", "times": "{n} fois"},
    cur=lambda b: f"{b - 1},99 €",
    prods=["E:le chargeur", "E:la friteuse sans huile", "E:la montre connectée", "E:les écouteurs sans fil",
           "C:la veste de pluie", "C:le manteau d'hiver", "C:le blouson"],
    fam=["ma mère", "mon frère", "ma sœur", "mon père"],
    open=["J'ai commandé {p}.", "Acheté {p} pour mon fils.", "On m'a offert {p} pour mon anniversaire.", "Commande n° {o}."],
    neg=["Colis arrivé {d} après la date annoncée.", "S:Le suivi n'a pas bougé depuis {d}.",
         "Le livreur a laissé le colis dehors, sous la pluie.", "Le carton est arrivé écrasé et déjà ouvert.",
         "C:J'ai commandé du bleu en M, j'ai reçu du gris en XL.", "Les frais de port coûtaient plus cher que l'article lui-même.",
         "S:Toujours rien reçu au bout de {d}.", "S:Indiqué comme livré, mais je n'ai jamais rien reçu.",
         "Payé {price} pour une finition de gadget de supermarché.", "Le même article est à {half} ailleurs.",
         "Le prix a baissé de {fee} deux jours après mon achat, et pas de remboursement de la différence.",
         "Prix de grande marque, mais c'est un produit générique avec un logo collé dessus.",
         "{fee} de frais supplémentaires sont apparus au moment de payer.",
         "J'ai écrit {x} au service client, toujours aucune réponse.", "Remboursement toujours pas effectué après {w}.",
         "Le service client m'a dit de voir directement avec le fabricant.", "L'étiquette de retour promise n'est jamais arrivée.",
         "Le chat a été fermé sans que mon problème soit réglé.", "Ma demande de garantie a été refusée.",
         "E:Ne fonctionne plus au bout de {d}.", "E:La batterie tient {h} au lieu des {m} annoncées.",
         "C:La fermeture éclair a lâché à la première utilisation.", "Sent toujours le produit chimique après {d} à l'air libre.",
         "C:Taille deux tailles en dessous : le L correspond à un S.", "E:Il manquait des vis et le chargeur dans la boîte.",
         "E:Chauffe tellement pendant la charge qu'on ne peut plus y toucher."],
    pos=["Reçu {e} plus tôt que prévu.", "Le service client a organisé le remplacement en {f}.",
         "Remboursé le jour même.", "E:Fonctionne toujours après {y} d'utilisation quotidienne.",
         "E:La batterie tient {H}, la fiche produit en annonce {M}.", "Payé {half} ici, le même modèle est à {price} en magasin.",
         "J'ai commandé le même pour {fam}.", "C:Taille exactement comme indiqué dans le guide des tailles.",
         "E:Deux chutes sur le carrelage, pas une rayure.", "Commandé le soir, dans la boîte aux lettres le lendemain matin.",
         "C:Tous les jours sur le dos depuis {y}, et les coutures n'ont pas bougé.",
         "S:C:Échange de taille fait en moins d'une semaine, sans discussion."],
    cue_neg=["Déçu.", "Dommage.", "Pas content."],
    cue_pos=["Très content.", "Je recommande.", "Satisfait."],
)

L["es"] = dict(
    units={"day": "{n} días", "week": "{n} semanas", "hour": "{n} horas", "year": "{n} años", "times": "{n} veces"},
    cur=lambda b: f"{b - 1},99 €",
    prods=["E:el cargador", "E:la freidora de aire", "E:el reloj inteligente", "E:los auriculares inalámbricos",
           "C:la chaqueta impermeable", "C:el abrigo", "C:la sudadera"],
    fam=["mi madre", "mi hermano", "mi hermana", "mi padre"],
    open=["Pedí {p}.", "Compré {p} para mi hijo.", "Me regalaron {p} por mi cumpleaños.", "Pedido n.º {o}."],
    neg=["Llegó {d} después de la fecha prometida.", "S:El seguimiento lleva {d} sin actualizarse.",
         "El repartidor dejó el paquete fuera, bajo la lluvia.", "La caja llegó aplastada y ya abierta.",
         "C:Pedí azul en talla M y me llegó gris en XL.", "El envío costó más que el propio artículo.",
         "S:Sigo esperando después de {d}.", "S:Figura como entregado, pero a mí no me ha llegado nada.",
         "Pagué {price} y el acabado es de tienda de todo a cien.", "El mismo artículo está a {half} en otra tienda.",
         "A los dos días de comprarlo bajó {fee} de precio y no me devuelven la diferencia.",
         "Precio de marca, pero es un producto genérico con una pegatina.",
         "Al pagar aparecieron {fee} de gastos que antes no se mencionaban.",
         "He escrito {x} a atención al cliente y nadie contesta.", "Después de {w}, el reembolso sigue sin llegar.",
         "Atención al cliente me dijo que hablara con el fabricante.", "La etiqueta de devolución que me prometieron nunca llegó.",
         "Me cerraron el chat sin resolver nada.", "Me rechazaron la garantía.",
         "E:Dejó de funcionar a los {d}.", "E:La batería dura {h} en vez de las {m} anunciadas.",
         "C:La cremallera se rompió el primer día.", "Sigue oliendo a productos químicos después de {d} aireándose.",
         "C:Talla dos tallas menos: la L es en realidad una S.", "E:En la caja faltaban los tornillos y el cargador.",
         "E:Se calienta tanto al cargar que no se puede tocar."],
    pos=["Llegó {e} antes de lo previsto.", "Atención al cliente gestionó el cambio en {f}.",
         "El reembolso me llegó el mismo día.", "E:Sigue funcionando después de {y} de uso diario.",
         "E:La batería dura {H} y el fabricante dice {M}.", "Aquí me costó {half}; en tienda física el mismo modelo está a {price}.",
         "He pedido el mismo para {fam}.", "C:La talla es exactamente la de la guía de tallas.",
         "E:Se me ha caído dos veces al suelo y ni un arañazo.", "Hice el pedido por la noche y a la mañana siguiente ya estaba en casa.",
         "C:Uso diario desde hace {y} y las costuras siguen intactas.",
         "S:C:El cambio de talla tardó menos de una semana, sin preguntas."],
    cue_neg=["Decepcionado.", "Una pena.", "No estoy contento."],
    cue_pos=["Muy contento.", "Lo recomiendo.", "Encantado."],
)

L["pt"] = dict(  # Brazilian Portuguese
    units={"day": "{n} dias", "week": "{n} semanas", "hour": "{n} horas", "year": "{n} anos", "times": "{n} vezes"},
    cur=lambda b: f"R$ {b * 5 - 1},90",
    prods=["E:o carregador", "E:a fritadeira elétrica", "E:o relógio inteligente", "E:o fone de ouvido sem fio",
           "C:a jaqueta corta-vento", "C:o casaco", "C:o moletom"],
    fam=["minha mãe", "meu irmão", "minha irmã", "meu pai"],
    open=["Comprei {p}.", "Comprei {p} para o meu filho.", "Ganhei {p} de aniversário.", "Pedido nº {o}."],
    neg=["Chegou {d} depois da data prometida.", "S:O rastreio está parado há {d}.",
         "O entregador deixou a encomenda do lado de fora, na chuva.", "A caixa chegou amassada e já aberta.",
         "C:Pedi azul tamanho M e veio cinza tamanho GG.", "O frete saiu mais caro que o próprio produto.",
         "S:Continuo esperando depois de {d}.", "S:Consta como entregue, mas não recebi nada.",
         "Paguei {price} e parece coisa de camelô.", "O mesmo produto custa {half} em outra loja.",
         "Dois dias depois da compra o preço caiu {fee} e não devolvem a diferença.",
         "Preço de marca, mas é um genérico com um adesivo colado.",
         "Na hora de pagar apareceram {fee} de taxas que não estavam no anúncio.",
         "Mandei mensagem para o SAC {x} e até agora ninguém respondeu.", "O reembolso ainda não caiu depois de {w}.",
         "O atendimento mandou eu procurar o fabricante.", "A etiqueta de devolução que prometeram nunca chegou.",
         "Encerraram o chat sem resolver nada.", "Negaram a garantia.",
         "E:Parou de funcionar com {d} de uso.", "E:A bateria dura {h} em vez das {m} anunciadas.",
         "C:O zíper quebrou no primeiro uso.", "Continua com cheiro forte de produto químico mesmo depois de {d} arejando.",
         "C:Veste dois números menor: o G parece um P.", "E:Faltaram os parafusos e o carregador na caixa.",
         "E:Esquenta tanto carregando que não dá para encostar."],
    pos=["Chegou {e} antes do prazo.", "O atendimento resolveu a troca em {f}.",
         "O estorno caiu no mesmo dia.", "E:Continua funcionando depois de {y} de uso diário.",
         "E:A bateria dura {H}, e o anúncio fala em {M}.", "Paguei {half} aqui; na loja física o mesmo modelo custa {price}.",
         "Comprei o mesmo modelo para {fam}.", "C:Serviu exatamente como indica a tabela de medidas.",
         "E:Já caiu duas vezes no chão e nem um arranhão.", "Pedi à noite e na manhã seguinte já estava aqui.",
         "C:Uso todo dia há {y} e as costuras continuam intactas.",
         "S:C:A troca de tamanho levou menos de uma semana, sem burocracia."],
    cue_neg=["Decepcionante.", "Que pena.", "Não gostei."],
    cue_pos=["Muito satisfeito.", "Recomendo.", "Adorei."],
)

L["it"] = dict(
    units={"day": "{n} giorni", "week": "{n} settimane", "hour": "{n} ore", "year": "{n} anni", "times": "{n} volte"},
    cur=lambda b: f"{b - 1},99 €",
    prods=["E:il caricabatterie", "E:la friggitrice ad aria", "E:lo smartwatch", "E:le cuffie wireless",
           "C:la giacca antipioggia", "C:il piumino", "C:la felpa"],
    fam=["mia madre", "mio fratello", "mia sorella", "mio padre"],
    open=["Ho ordinato {p}.", "Ho comprato {p} per mio figlio.", "Mi hanno regalato {p} per il compleanno.", "Ordine n. {o}."],
    neg=["Il pacco è arrivato {d} dopo la data promessa.", "S:Il tracciamento è fermo da {d}.",
         "Il corriere ha lasciato il pacco fuori, sotto la pioggia.", "La scatola è arrivata schiacciata e già aperta.",
         "C:Ho ordinato blu taglia M e mi è arrivato grigio taglia XL.", "La spedizione è costata più dell'articolo stesso.",
         "S:Sto ancora aspettando dopo {d}.", "S:Risulta consegnato, ma a me non è arrivato niente.",
         "Pagato {price} e sembra roba da bancarella.", "Lo stesso articolo costa {half} in un altro negozio.",
         "Due giorni dopo l'acquisto il prezzo è sceso di {fee} e la differenza non la rimborsano.",
         "Prezzo da prodotto di marca, ma è un generico con un adesivo sopra.",
         "Al momento del pagamento sono spuntati {fee} di commissioni.",
         "Ho scritto {x} all'assistenza, nessuna risposta.", "Dopo {w} il rimborso non è ancora arrivato.",
         "L'assistenza mi ha detto di rivolgermi al produttore.", "L'etichetta per il reso non è mai arrivata.",
         "Hanno chiuso la chat senza risolvere nulla.", "Mi hanno rifiutato la garanzia.",
         "E:Ha smesso di funzionare dopo {d}.", "E:La batteria dura {h} invece delle {m} dichiarate.",
         "C:La cerniera si è rotta al primo utilizzo.", "Ha ancora un forte odore di prodotti chimici dopo {d} all'aria.",
         "C:Veste due taglie in meno: la L è una S.", "E:Nella scatola mancavano le viti e il caricatore.",
         "E:Durante la ricarica la scocca scotta al punto da non poterla toccare."],
    pos=["Il pacco è arrivato con {e} di anticipo.", "L'assistenza ha gestito la sostituzione in {f}.",
         "Il rimborso è arrivato in giornata.", "E:Funziona ancora dopo {y} di uso quotidiano.",
         "E:La batteria dura {H}, in scheda ne sono dichiarate {M}.", "Pagato {half} qui, in negozio lo stesso modello costa {price}.",
         "Ho ordinato lo stesso anche per {fam}.", "C:Veste esattamente come indicato nella tabella taglie.",
         "E:Due cadute sulle piastrelle, neanche un graffio.", "Ordinato la sera, la mattina dopo era già a casa.",
         "C:Uso quotidiano da {y}, le cuciture sono ancora intatte.",
         "S:C:Cambio taglia fatto in meno di una settimana, senza storie."],
    cue_neg=["Deluso.", "Peccato.", "Non sono contento."],
    cue_pos=["Contentissimo.", "Lo consiglio.", "Soddisfatto."],
)

L["hi"] = dict(
    units={"day": "{n} दिन", "week": "{n} हफ़्ते", "hour": "{n} घंटे", "year": "{n} साल", "times": "{n} बार"},
    cur=lambda b: f"₹{b * 80 - 1:,}",
    prods=["E:चार्जर", "E:ब्लूटूथ स्पीकर", "E:पावर बैंक", "E:मिक्सर ग्राइंडर", "C:स्वेटर", "C:कुर्ता", "C:ट्रैक सूट"],
    fam=["मम्मी", "भाई", "बहन", "पापा"],
    open=["{p} ऑर्डर किया था।", "बेटे के लिए {p} लिया था।", "बर्थडे पर {p} गिफ़्ट में मिला।", "ऑर्डर नंबर {o}।"],
    neg=["बताई गई तारीख से {d} बाद डिलीवरी हुई।", "S:{d} से ट्रैकिंग अपडेट नहीं हुई है।",
         "डिलीवरी वाला पार्सल बारिश में बाहर ही छोड़ गया।", "डिब्बा दबा हुआ और पहले से खुला हुआ आया।",
         "C:नीला M साइज़ मंगाया था, आया ग्रे XL।", "डिलीवरी चार्ज सामान की कीमत से ज़्यादा लगा।",
         "S:{d} हो गए, अभी तक सामान नहीं आया।", "S:ऐप में डिलीवर्ड दिखा रहा है, पर मुझे कुछ नहीं मिला।",
         "{price} दिए, और माल फुटपाथ पर बिकने वाले सामान जैसा है।", "यही चीज़ दूसरी साइट पर {half} में मिल रही है।",
         "खरीदने के दो दिन बाद ही दाम {fee} कम हो गया, और फ़र्क़ वापस नहीं मिला।",
         "दाम ब्रांडेड वाला, पर अंदर से लोकल माल निकला।",
         "पेमेंट के वक़्त {fee} का एक्स्ट्रा चार्ज अलग से जुड़ गया।",
         "कस्टमर केयर को {x} मेल किया, अब तक कोई जवाब नहीं।", "{w} हो गए, रिफंड अब तक नहीं आया।",
         "कस्टमर केयर ने कहा कि कंपनी से खुद बात करो।", "रिटर्न का लेबल कभी आया ही नहीं।",
         "चैट वाले ने बिना कुछ सुलझाए चैट बंद कर दी।", "वारंटी क्लेम रिजेक्ट कर दिया गया।",
         "E:{d} में ही चलना बंद हो गया।", "E:बैटरी {m} की बताई थी, चलती सिर्फ़ {h} है।",
         "C:पहली बार पहनते ही ज़िप टूट गई।", "{d} बाद भी केमिकल की तेज़ गंध आ रही है।",
         "C:साइज़ चार्ट से दो साइज़ छोटा है।", "E:डिब्बे में पेंच और चार्जर नहीं थे।",
         "E:चार्ज करते समय इतना गरम हो जाता है कि हाथ नहीं लगा सकते।"],
    pos=["बताई गई तारीख से {e} पहले ही आ गया।", "कस्टमर केयर ने {f} के अंदर रिप्लेसमेंट कर दिया।",
         "रिफंड उसी दिन खाते में आ गया।", "E:{y} से रोज़ इस्तेमाल हो रहा है, अब भी चल रहा है।",
         "E:बैटरी {M} की बताई थी, चलती {H} है।", "यहाँ {half} में मिला, दुकान पर यही मॉडल {price} का है।",
         "{fam} के लिए भी एक और मंगा लिया।", "C:साइज़ चार्ट में जैसा लिखा है, बिल्कुल वैसा ही फ़िट आया।",
         "E:दो बार फ़र्श पर गिरा, एक खरोंच तक नहीं आई।", "रात को ऑर्डर किया, सुबह दरवाज़े पर था।",
         "C:{y} से रोज़ पहन रहा हूँ, सिलाई आज भी वैसी ही है।",
         "S:C:साइज़ बदलने में एक हफ़्ते से कम लगा, कोई सवाल नहीं पूछा।"],
    cue_neg=["निराश हूँ।", "पैसे बेकार गए।", "उम्मीद नहीं थी।"],
    cue_pos=["खुश हूँ।", "बढ़िया।", "ज़रूर लें।"],
)

L["ar"] = dict(  # MSA with a few Gulf shopping words (أبو ريالين، تجاري)
    units={"day": ar_unit("أيام", "يومًا"), "week": ar_unit("أسابيع", "أسبوعًا"), "hour": ar_unit("ساعات", "ساعة"),
           "year": ar_unit("سنوات", "سنة"), "times": ar_unit("مرات", "مرة")},
    cur=lambda b: f"{b * 4} ريال",
    prods=["E:الشاحن", "E:الباور بانك", "E:جهاز القلي الهوائي", "E:الخلاط", "C:الجاكيت", "C:البنطلون", "C:الثوب"],
    fam=["لأمي", "لأخي", "لأختي", "لأبي"],
    open=["طلبت {p}.", "اشتريت {p} لابني.", "حصلت على {p} هدية في عيد ميلادي.", "رقم الطلب {o}."],
    neg=["وصل الطلب بعد الموعد المحدد بـ{d}.", "S:التتبع لم يتحدث منذ {d}.",
         "المندوب ترك الطرد خارج الباب تحت المطر.", "وصل الصندوق مضغوطًا ومفتوحًا من قبل.",
         "C:طلبت اللون الأزرق مقاس M ووصلني رمادي مقاس XL.", "تكلفة الشحن أعلى من سعر المنتج نفسه.",
         "S:ما زلت أنتظر بعد {d}.", "S:مكتوب أنه تم التسليم، لكن لم يصلني شيء.",
         "دفعت {price} والمنتج كأنه من محلات أبو ريالين.", "نفس المنتج بـ{half} في متجر آخر.",
         "بعد يومين من الشراء نزل السعر {fee} ولم يعيدوا الفرق.",
         "السعر سعر ماركة، والمنتج تجاري بدون اسم.",
         "عند الدفع ظهرت رسوم إضافية {fee} لم تكن مذكورة.",
         "راسلت خدمة العملاء {x} ولا يوجد أي رد.", "مرت {w} والمبلغ لم يُسترد حتى الآن.",
         "خدمة العملاء طلبت مني التواصل مع الشركة المصنعة بنفسي.", "ملصق الإرجاع الذي وعدوا به لم يصل أبدًا.",
         "أغلقوا المحادثة دون حل المشكلة.", "رفضوا طلب الضمان.",
         "E:توقف عن العمل بعد {d}.", "E:البطارية تدوم {h} بدلًا من {m} كما هو مكتوب.",
         "C:انكسر السحاب من أول استخدام.", "رائحة المواد الكيميائية ما زالت قوية بعد {d} من التهوية.",
         "C:المقاس أصغر بمقاسين من الجدول.", "E:العلبة كانت ناقصة البراغي والشاحن.",
         "E:يسخن أثناء الشحن لدرجة أنك لا تستطيع لمسه."],
    pos=["وصل قبل الموعد بـ{e}.", "خدمة العملاء رتبوا الاستبدال خلال {f}.",
         "رجع المبلغ في نفس اليوم.", "E:ما زال يعمل بعد {y} من الاستخدام اليومي.",
         "E:البطارية تدوم {H} والمكتوب {M}.", "السعر هنا {half}، ونفس الموديل في المحل بـ{price}.",
         "طلبت واحدًا آخر {fam}.", "C:المقاس مطابق تمامًا لجدول المقاسات.",
         "E:وقع مرتين على البلاط ولا خدش.", "طلبت في الليل ووصل الطلب صباح اليوم التالي.",
         "C:ألبسه يوميًا منذ {y} والخياطة كما هي.",
         "S:C:تبديل المقاس تم في أقل من أسبوع بدون أي تعقيد."],
    cue_neg=["للأسف.", "غير راضٍ.", "تجربة مخيبة."],
    cue_pos=["راضٍ جدًا.", "أنصح به.", "شكرًا للمتجر."],
)

L["zh"] = dict(
    units={"day": "{n}天", "week": "{n}周", "hour": "{n}个小时", "year": "{n}年", "times": "{n}次"},
    cur=lambda b: f"{b * 7}元",
    prods=["E:充电器", "E:蓝牙耳机", "E:充电宝", "E:空气炸锅", "C:羽绒服", "C:冲锋衣", "C:卫衣"],
    fam=["我妈", "我弟", "我姐", "我爸"],
    open=["买的{p}。", "给儿子买的{p}。", "生日收到的{p}。", "订单号{o}。"],
    sep="",
    neg=["比承诺的时间晚了{d}才到。", "S:物流信息{d}没更新了。",
         "快递员直接把包裹放门外，淋了雨。", "箱子到的时候压扁了，还被拆过。",
         "C:下单蓝色M码，发来的是灰色XL。", "运费比东西本身还贵。",
         "S:等了{d}，还没收到。", "S:显示已签收，但我根本没收到。",
         "花了{price}，做工跟地摊货一样。", "同款别家只卖{half}。",
         "刚买两天就降价{fee}，也不给补差价。", "卖大牌的价格，到手是没牌子的杂牌货。",
         "付款时突然多出{fee}的手续费。",
         "联系客服{x}，到现在没人回复。", "退款{w}了还没到账。",
         "客服让我自己去找厂家。", "说好的退货面单一直没发过来。",
         "在线客服没解决问题就把对话关了。", "保修申请被拒了。",
         "E:用了{d}就坏了。", "E:标称续航{m}，实际只有{h}。",
         "C:第一次穿拉链就坏了。", "放了{d}还有很重的化学味。",
         "C:比尺码表小两个码。", "E:盒子里少了螺丝和充电器。",
         "E:充电时烫得没法拿在手里。"],
    pos=["比预计早了{e}到货。", "客服{f}内就给换了新的。",
         "退款当天就到账了。", "E:每天用，{y}了还正常工作。",
         "E:标称续航{M}，实际能用{H}。", "这里{half}买的，实体店同款要{price}。",
         "又给{fam}买了一个。", "C:尺码和尺码表完全一致。",
         "E:在瓷砖上摔了两次，一点划痕都没有。", "晚上下的单，第二天早上就送到了。",
         "C:天天穿了{y}，线头都没开。",
         "S:C:换码不到一周就搞定了，没问任何问题。"],
    cue_neg=["失望。", "不推荐。", "差评。"],
    cue_pos=["满意。", "推荐。", "好评。"],
)

L["ja"] = dict(
    units={"day": "{n}日", "week": "{n}週間", "hour": "{n}時間", "year": "{n}年", "times": "{n}回"},
    cur=lambda b: f"{b * 150 // 100 * 100 + 80:,}円",
    prods=["E:充電器", "E:ワイヤレスイヤホン", "E:モバイルバッテリー", "E:ノンフライヤー", "C:ダウンジャケット",
           "C:レインコート", "C:パーカー"],
    fam=["母", "弟", "姉", "父"],
    open=["{p}を注文しました。", "息子用に{p}を購入。", "誕生日に{p}をもらいました。", "注文番号{o}。"],
    sep="",
    neg=["お届け予定日から{d}遅れて届きました。", "S:追跡情報が{d}更新されていません。",
         "配達員が荷物を雨の中、玄関の外に置いていきました。", "箱が潰れていて、開封された跡がありました。",
         "C:青のMを注文したのに、グレーのXLが届きました。", "送料が商品本体より高かったです。",
         "S:{d}経ってもまだ届きません。", "S:配達済みになっていますが、受け取っていません。",
         "{price}払いましたが、百均に並んでいそうな作りです。", "同じ商品が他のショップでは{half}でした。",
         "購入して2日後に{fee}値下がりし、差額の返金もありません。",
         "ブランド品の値段なのに、中身はノーブランド品でした。",
         "支払い画面で{fee}の手数料が追加されました。",
         "サポートに{x}問い合わせましたが、返信がありません。", "{w}経っても返金されていません。",
         "サポートからはメーカーに直接問い合わせるよう言われました。", "返品ラベルを送ると言われましたが、結局届きませんでした。",
         "チャットは解決しないまま終了されました。", "保証の申請を断られました。",
         "E:{d}で動かなくなりました。", "E:バッテリーは{m}持つと書いてあるのに、実際は{h}で切れます。",
         "C:初めて着たときにファスナーが壊れました。", "{d}陰干ししても薬品の臭いが取れません。",
         "C:サイズ表より2サイズ小さいです。", "E:ネジと充電器が入っていませんでした。",
         "E:充電中、触れないほど熱くなります。"],
    pos=["予定より{e}早く届きました。", "サポートが{f}以内に交換品を手配してくれました。",
         "返金はその日のうちに処理されました。", "E:毎日使って{y}経ちますが、まだ普通に動いています。",
         "E:バッテリーは{M}と書いてありますが、実際は{H}持ちます。", "ここで{half}で買いました。店頭では同じモデルが{price}です。",
         "{fam}の分ももう一つ注文しました。", "C:サイズ表どおりのサイズ感でした。",
         "E:タイルの床に2回落としましたが、傷一つありません。", "夜に注文して、翌朝には届きました。",
         "C:{y}毎日着ていますが、縫い目はほつれていません。",
         "S:C:サイズ交換も1週間かからず、すんなり対応してもらえました。"],
    cue_neg=["残念です。", "がっかりです。", "リピートはないです。"],
    cue_pos=["満足です。", "おすすめです。", "リピート確定です。"],
)

LANGS = ["en", "de", "fr", "es", "pt", "it", "hi", "ar", "zh", "ja"]


def parse_tpl(t):
    """'S:E:text' -> (solo, kind, text); kind in {None, 'E', 'C'}."""
    solo, kind = False, None
    while len(t) > 2 and t[1] == ":" and t[0] in "SEC":
        if t[0] == "S":
            solo = True
        else:
            kind = t[0]
        t = t[2:]
    return solo, kind, t


def make_slots(rng, spec, prod):
    units = fmt_units(spec["units"])
    s = {}
    for k, (kind, lo, hi) in SLOTS.items():
        u = units.get(kind) or units[kind.split("_")[0]]
        s[k] = u(rng.randint(lo, hi))
    b = PRICES[rng.randrange(len(PRICES))]
    s["price"], s["half"] = spec["cur"](b), spec["cur"](b // 2)
    s["fee"] = spec["cur"](FEES[rng.randrange(len(FEES))])
    s["fam"] = spec["fam"][rng.randrange(len(spec["fam"]))]
    s["p"] = prod
    s["o"] = str(rng.randint(100000, 999999))
    return s


def gen_one(rng, spec, label):
    sep = spec.get("sep", " ")
    pk, prod = spec["prods"][rng.randrange(len(spec["prods"]))].split(":", 1)
    tpls = [parse_tpl(t) for t in spec[label]]
    ok = [t for t in tpls if t[1] in (None, pk)]
    s = make_slots(rng, spec, prod)
    post = rng.random() < 0.25
    solo, _, t1 = ok[rng.randrange(len(ok))]
    parts = [t1.format(**s)]
    if not post:
        if rng.random() < 0.4:
            parts.insert(0, spec["open"][rng.randrange(len(spec["open"]))].format(**s))
        if not solo and rng.random() < 0.5:
            rest = [t for t in ok if not t[0] and t[2] != t1]
            s2 = make_slots(rng, spec, prod)
            s2["price"], s2["half"], s2["fee"] = s["price"], s["half"], s["fee"]
            parts.append(rest[rng.randrange(len(rest))][2].format(**s2))
    cue = rng.random() < 0.15
    if cue:
        c = spec["cue_" + label]
        parts.append(c[rng.randrange(len(c))])
    return sep.join(parts), ("post" if post else "review"), cue


def build(seed, per_label):
    rows, stats = [], {}
    for lang in LANGS:
        spec = L[lang]
        seen = set()
        for label in ("neg", "pos"):
            rng = random.Random(f"{seed}-implicit-{lang}-{label}")
            got, cues, misses = 0, 0, 0
            while got < per_label and misses < 20000:  # 20k duplicates in a row: space exhausted
                text, domain, cue = gen_one(rng, spec, label)
                if text in seen:
                    misses += 1
                    continue
                misses = 0
                seen.add(text)
                got += 1
                cues += cue
                rows.append({"text": text, "label": label, "lang": lang, "source": "rules",
                             "subset": f"implicit-{lang}", "domain": domain})
            if got < per_label:
                print(f"warning: {lang}/{label}: only {got} distinct texts (asked {per_label})", file=sys.stderr)
            stats[(lang, label)] = (got, cues)
    return rows, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--per-label", type=int, default=400)
    ap.add_argument("--out", default=os.path.expanduser("~/.cache/earshot/train/implicit.jsonl"))
    a = ap.parse_args()
    rows, stats = build(a.seed, a.per_label)
    rows.sort(key=lambda r: (r["lang"], r["label"], r["text"]))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    for (lang, label), (n, cues) in sorted(stats.items()):
        dom = sum(1 for r in rows if r["lang"] == lang and r["label"] == label and r["domain"] == "post")
        print(f"{lang} {label}: {n} (review {n - dom} / post {dom}; explicit cue {cues})", file=sys.stderr)
    print(f"wrote {len(rows)} rows to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
